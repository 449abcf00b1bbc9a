"""Text rendering of results: the properties × layers matrix, failure details and progress."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from grl_props.runner import LayerReport, PropertyResult

__all__ = ["Progress", "render_details", "render_matrix", "short_names"]

_MARK = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skip"}


def short_names(specs: Sequence[str]) -> list[str]:
    """Column labels: the last part of each spec, made unique with a number where needed."""
    names = [spec.replace("\\", "/").rsplit(":", 1)[-1].rsplit("/", 1)[-1] for spec in specs]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
    return unique


def render_matrix(reports: Sequence[LayerReport], required: Sequence[str]) -> str:
    """One row per property (grouped by tier), one column per layer, and a summary row per tier."""
    if not reports or not reports[0].properties:
        return ""
    names = short_names([r.spec for r in reports])
    rows = [(p.tier, p.name) for p in reports[0].properties]
    width_name = max(len(name) for _, name in rows)
    widths = [max(len(n), 6) for n in names]
    header = f"{'tier':8} {'property':{width_name}}  " + "  ".join(
        f"{n:{w}}" for n, w in zip(names, widths, strict=True)
    )
    lines = [header, "-" * len(header)]
    previous_tier = None
    for index, (tier, name) in enumerate(rows):
        if previous_tier is not None and tier != previous_tier:
            lines.append(_tier_summary(reports, previous_tier, widths, width_name, required))
        previous_tier = tier
        cells = [_MARK[r.properties[index].status] for r in reports]
        lines.append(f"{tier:8} {name:{width_name}}  " + "  ".join(
            f"{c:{w}}" for c, w in zip(cells, widths, strict=True)))
    if previous_tier is not None:
        lines.append(_tier_summary(reports, previous_tier, widths, width_name, required))
    return "\n".join(lines)


def _tier_summary(reports: Sequence[LayerReport], tier: str, widths: list[int], width_name: int,
                  required: Sequence[str]) -> str:
    cells = []
    for report in reports:
        results = [r for r in report.properties if r.tier == tier]
        passed = sum(r.status in ("pass", "skip") for r in results)
        cells.append(f"{passed}/{len(results)}")
    label = f"{tier} ok" + (" (required)" if tier in required else "")
    row = "  ".join(f"{c:{w}}" for c, w in zip(cells, widths, strict=True))
    return f"{'':8} {label:{width_name}}  " + row


def render_details(reports: Sequence[LayerReport]) -> str:
    """Every failure and error with its counterexample, then skips with their reasons."""
    blocks = []
    for report in reports:
        broken = [r for r in report.properties if r.status in ("fail", "error")]
        skipped = [r for r in report.properties if r.status == "skip"]
        if not (broken or skipped or report.note):
            continue
        lines = [f"== {report.spec}"]
        if report.note:
            lines.append(f"   note: {report.note}")
        for result in broken:
            lines.append(f"   {_MARK[result.status]} {result.tier}/{result.name}:")
            lines.extend("      " + line for line in result.detail.splitlines())
        for result in skipped:
            lines.append(f"   skip {result.tier}/{result.name}: {result.detail}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


class Progress:
    """Progress on a stream: one rewritten line on a terminal, one line per step otherwise."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.live = stream.isatty()

    def property_done(self, label: str, result: PropertyResult, done: int, total: int) -> None:
        text = (f"[{label}] {done}/{total} {result.tier}/{result.name}: {result.status} "
                f"({result.seconds:.1f} s)")
        self._show(text, final=done == total)

    def stage(self, label: str, stage: str, done: int, total: int) -> None:
        final = done >= total
        if not self.live and not final and done % max(1, total // 4):
            return  # off a terminal: a line at each quarter only
        filled = int(20 * done / total) if total else 20
        bar = "#" * filled + "." * (20 - filled)
        self._show(f"[{label}] {stage} [{bar}] {done}/{total}", final=final)

    def _show(self, text: str, *, final: bool) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
