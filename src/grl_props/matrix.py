"""Text rendering of results: the properties × layers matrix, failure details and progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from grl_props.runner import LayerReport, PropertyResult

__all__ = ["Progress", "mark", "render_details", "render_matrix", "render_warnings", "short_names"]

_MARK = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skip": "skip"}
#: How a skip shows in the matrix: what was not checked, and why.
_SKIP_MARK = {"not_claimed": "skip (not claimed)", "needs_cuda": "skip (needs CUDA)",
              "not_applicable": "skip (n/a)"}
_FEWER = "*"


def mark(result: PropertyResult) -> str:
    """The matrix cell of one result: ``pass`` (``pass*`` when it ran fewer examples than
    asked), ``FAIL``, ``ERROR``, or ``skip (not claimed)`` / ``skip (needs CUDA)`` / ``skip (n/a)``."""
    if result.status == "skip":
        return _SKIP_MARK[result.skip_kind or "not_applicable"]
    return _MARK[result.status] + (_FEWER if result.ran_fewer_examples else "")


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
    widths = [max([len(n), 6, *(len(mark(p)) for p in r.properties),
                   *(len(_summary_cell(r, t)) for t in {p.tier for p in r.properties})])
              for n, r in zip(names, reports, strict=True)]
    header = f"{'tier':8} {'property':{width_name}}  " + "  ".join(
        f"{n:{w}}" for n, w in zip(names, widths, strict=True)
    )
    lines = [_contract_line(reports), header, "-" * len(header)]
    previous_tier = None
    for index, (tier, name) in enumerate(rows):
        if previous_tier is not None and tier != previous_tier:
            lines.append(_tier_summary(reports, previous_tier, widths, width_name, required))
        previous_tier = tier
        cells = [mark(r.properties[index]) for r in reports]
        lines.append(f"{tier:8} {name:{width_name}}  " + "  ".join(
            f"{c:{w}}" for c, w in zip(cells, widths, strict=True)))
    if previous_tier is not None:
        lines.append(_tier_summary(reports, previous_tier, widths, width_name, required))
    if any(p.ran_fewer_examples for r in reports for p in r.properties):
        lines.append(f"{_FEWER} ran fewer examples than asked (see below)")
    return "\n".join(lines)


def _contract_line(reports: Sequence[LayerReport]) -> str:
    """Which contract the matrix checks: ``contract: reverse (forward the identity, VJP -alpha·v)``."""
    from grl_props.contracts import CONTRACTS

    named = sorted({r.contract for r in reports})
    if len(named) == 1 and named[0] in CONTRACTS:
        contract = CONTRACTS[named[0]]
        return f"contract: {contract.name} (forward {contract.forward_text}, VJP {contract.vjp_text})"
    return "contract: " + ", ".join(named)


def _summary_cell(report: LayerReport, tier: str) -> str:
    """``passed/total pass``, and how many were skipped (checked nothing), e.g. ``9/14 pass, 5 skip``."""
    results = [r for r in report.properties if r.tier == tier]
    passed = sum(r.status == "pass" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    return f"{passed}/{len(results)} pass" + (f", {skipped} skip" if skipped else "")


def _tier_summary(reports: Sequence[LayerReport], tier: str, widths: list[int], width_name: int,
                  required: Sequence[str]) -> str:
    cells = [_summary_cell(report, tier) for report in reports]
    label = f"{tier}" + (" (required)" if tier in required else "")
    row = "  ".join(f"{c:{w}}" for c, w in zip(cells, widths, strict=True))
    return f"{'':8} {label:{width_name}}  " + row


def render_details(reports: Sequence[LayerReport]) -> str:
    """Every failure and error with its counterexample and the property's remedy, then skips with
    their reasons. Failures with the same detail are shown once, naming every property; a layer
    that cannot run gets its one sentence, once."""
    blocks = []
    for report in reports:
        broken = [r for r in report.properties if r.status in ("fail", "error")]
        fewer = [r for r in report.properties if r.ran_fewer_examples]
        skipped = [r for r in report.properties if r.status == "skip"]
        if not (broken or fewer or skipped or report.note):
            continue
        lines = [f"== {report.spec}"]
        if report.note:
            lines.append(f"   note: {report.note}")
        if report.cannot_run:
            marks = sorted({_MARK[r.status] for r in report.properties})
            lines.append(f"   {'/'.join(marks)} every property ({len(report.properties)}), none "
                         f"run: {report.cannot_run}")
            broken = fewer = skipped = []
        # Where core fails, other failures may follow from it: their remedy applies after.
        core_failed = any(r.tier == "core" for r in broken)
        for group in _same_detail(broken):
            first = group[0]
            names = ", ".join(f"{r.tier}/{r.name}" for r in group)
            lines.append(f"   {_MARK[first.status]} {names}:")
            lines.extend("      " + line for line in first.detail.splitlines())
            when = " (if it still fails once core passes)" if core_failed and first.tier != "core" else ""
            for remedy in dict.fromkeys(r.remedy for r in group if r.remedy):
                lines.append(f"      remedy{when}: {remedy}")
        for result in fewer:
            lines.append(f"   pass{_FEWER} {result.tier}/{result.name}: {result.detail}")
        for result in skipped:
            lines.append(f"   {mark(result)} {result.tier}/{result.name}: {result.detail}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _same_detail(results: Sequence[PropertyResult]) -> list[list[PropertyResult]]:
    """``results`` grouped by (status, detail), in the order each group first appears."""
    groups: dict[tuple[str, str], list[PropertyResult]] = {}
    for result in results:
        groups.setdefault((result.status, result.detail), []).append(result)
    return list(groups.values())


def render_warnings(reports: Sequence[LayerReport]) -> str:
    """What torch or the layers warned or wrote to stderr while the properties ran, each distinct
    line once, with the first layer and property that produced it; ``""`` when nothing was."""
    seen: dict[str, dict[str, None]] = {}  # line -> the properties that produced it, in order
    for label, report in zip(short_names([r.spec for r in reports]), reports, strict=True):
        for result in report.properties:
            for line in result.warnings:
                seen.setdefault(line, {})[f"{label} {result.name}"] = None
    if not seen:
        return ""
    lines = ["warnings while the properties ran (each shown once):"]
    for text, found in seen.items():
        where = list(found)
        more = f" and {len(where) - 1} more" if len(where) > 1 else ""
        lines.append("  " + text.replace("\n", "\n    ") + f"\n    (from {where[0]}{more})")
    return "\n".join(lines)


class Progress:
    """Progress on a stream: one rewritten line on a terminal, a few lines otherwise.

    On a terminal a training stage is redrawn at most every ``interval`` seconds (and always at
    its end), so thousands of steps cost a few writes, not one each; off a terminal a stage
    writes a line at each quarter. ``clock`` is for tests.
    """

    def __init__(self, stream: TextIO = sys.stderr, *, interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.interval = interval
        self.clock = clock
        self._last = -float("inf")

    def property_done(self, label: str, result: PropertyResult, done: int, total: int) -> None:
        text = (f"[{label}] {done}/{total} {result.tier}/{result.name}: {result.status} "
                f"({result.seconds:.1f} s)")
        self._show(text, final=done == total)

    def stage(self, label: str, stage: str, done: int, total: int) -> None:
        final = done >= total
        if not self.live and not final and done % max(1, total // 4):
            return  # off a terminal: a line at each quarter only
        if self.live and not final and self.clock() - self._last < self.interval:
            return  # on a terminal: a few redraws a second at most
        filled = int(20 * done / total) if total else 20
        bar = "#" * filled + "." * (20 - filled)
        self._show(f"[{label}] {stage} [{bar}] {done}/{total}", final=final)

    def _show(self, text: str, *, final: bool) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last = self.clock()
