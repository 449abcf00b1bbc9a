"""The top-level page of ``grl-props check --report DIR``: every layer of the run on one page.

:func:`write_index` writes ``DIR/index.html``: per layer, the property results per tier, each
failure with its detail and remedy, the label-removal verdict, and a link to the layer's own
report (``DIR/<layer>/index.html``, written by :mod:`grl_props.report`). Like every file
grl-props writes, it starts with :data:`grl_props.report.MARKER`; an ``index.html`` without it is
never overwritten (:func:`check_index` refuses it before anything runs).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from grl_props.report import MARKER, ReportError
from grl_props.runner import LayerReport

__all__ = ["INDEX", "check_index", "write_index"]

#: The index page's name inside the report directory.
INDEX = "index.html"

_COLOURS = {"pass": "#2e7d32", "fail": "#c62828", "error": "#c62828", "invalid": "#ef6c00",
            "skip": "#757575"}


def check_index(directory: str | Path) -> None:
    """Raise :class:`~grl_props.report.ReportError` if ``DIR/index.html`` exists and grl-props did
    not write it (or cannot be read). Touches nothing."""
    path = Path(directory) / INDEX
    if not path.exists():
        return
    try:
        ours = path.is_file() and path.read_text(errors="replace").startswith(MARKER)
    except OSError as exc:
        raise ReportError(f"{path} cannot be read ({exc.strerror}); choose another "
                          "directory") from None
    if not ours:
        raise ReportError(f"{path} exists and was not written by grl-props; choose another "
                          "directory or remove it")


def write_index(directory: str | Path, reports: Sequence[LayerReport], required: Sequence[str]
                ) -> Path:
    """Write ``DIR/index.html`` over ``reports`` (``required``: the tiers that must pass);
    return its path. Links point at each layer's report where ``statistical["report"]`` names one
    inside ``directory``."""
    directory = Path(directory)
    check_index(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / INDEX
    sections = [_layer_section(directory, report, required) for report in reports]
    path.write_text(f"""{MARKER}
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>grl-props: {len(reports)} layer(s)</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:12px}}
pre{{background:#f6f6f6;padding:4px;white-space:pre-wrap;font-size:12px}}</style></head><body>
<h1>grl-props check</h1>
<p>Required tiers: {html.escape(', '.join(required))}.</p>
{''.join(sections)}
</body></html>
""")
    return path


def _layer_section(directory: Path, report: LayerReport, required: Sequence[str]) -> str:
    ok = report.ok(required)
    heading = (f"<span style=\"color:{_COLOURS['pass' if ok else 'fail']}\">"
               f"{'/'.join(required)} {'OK' if ok else 'FAILED'}</span>" if report.properties
               else "no property run")  # name only what ran, as the CLI's closing line does
    parts = [f"<h2>{html.escape(report.spec)}: {heading}</h2>"]
    if report.properties:
        rows = []
        for tier, counts in report.summary().items():
            cells = [tier, *(str(counts[key]) for key in counts)]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        keys = next(iter(report.summary().values()))
        head = "".join(f"<th>{html.escape(k)}</th>" for k in ["tier", *keys])
        parts.append(f"<table><tr>{head}</tr>{''.join(rows)}</table>")
        if report.cannot_run:
            parts.append(f"<p>No property could run: {html.escape(report.cannot_run)}</p>")
        else:
            for result in report.properties:
                if result.status not in ("fail", "error"):
                    continue
                colour = _COLOURS[result.status]
                remedy = (f"<p><b>Remedy:</b> {html.escape(result.remedy)}</p>"
                          if result.remedy else "")
                parts.append(f"<h3><span style=\"color:{colour}\">{result.status.upper()}</span> "
                             f"{html.escape(result.tier)}/{html.escape(result.name)}</h3>"
                             f"<pre>{html.escape(result.detail)}</pre>{remedy}")
    statistical = report.statistical
    if statistical is not None:
        verdict = str(statistical.get("verdict"))
        colour = _COLOURS.get(verdict, "#000")
        link = ""
        written = statistical.get("report")
        if written:
            try:
                relative = Path(written).resolve().relative_to(directory.resolve())
                link = f' — <a href="{html.escape(relative.as_posix())}">report</a>'
            except ValueError:
                link = f" — report: {html.escape(str(written))}"
        summary = html.escape(str(statistical.get("summary", "")))
        parts.append(f"<p>Label removal: <b style=\"color:{colour}\">{html.escape(verdict)}"
                     f"</b>{link}</p><p>{summary}</p>")
    return "\n".join(parts)
