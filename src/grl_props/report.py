"""HTML report of a label-removal verdict, with hand-written inline-able SVG plots.

:func:`write_report` writes ``index.html`` and four SVG files into a directory: a PCA scatter of
the probe latents (reversal, control) coloured by label, the judged probe's usable information
per arm and its permutation null across seeds, per-seed leakage against the ``tau`` and
``tau + delta`` bands, and training curves (the adversary's against the label entropy). No
plotting library is needed. Every file it writes starts with a marker comment; a file of the same
name without the marker is never overwritten (``ReportError``), and nothing else in the
directory is touched.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from grl_props.label_removal import StatisticalResult

__all__ = ["ReportError", "check_report_directory", "write_report", "MARKER"]

#: First line of every file this module writes; files without it are never overwritten.
MARKER = "<!-- written by grl-props report -->"

_CLASS_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
_ARM_COLOURS = {"reversal": "#4c72b0", "control": "#c44e52", "shuffled reversal": "#7f7f7f",
                "shuffled control": "#bcbd22"}
_FILES = ("index.html", "latents.svg", "probe_bits.svg", "leakage.svg", "training.svg")


class ReportError(FileExistsError):
    """The report would overwrite a file that grl-props did not write."""


def check_report_directory(directory: str | Path) -> None:
    """Raise :class:`ReportError` if writing a report into ``directory`` would overwrite a file
    that grl-props did not write (one of ``index.html`` and the four ``.svg`` without the
    grl-props marker), or if ``directory`` exists and is not a directory. Touches nothing;
    callers use it to refuse before a long run."""
    if Path(directory).exists() and not Path(directory).is_dir():
        raise ReportError(f"{directory} exists and is not a directory; choose another path")
    for name in _FILES:
        path = Path(directory) / name
        if not path.exists():
            continue
        try:
            ours = path.is_file() and path.read_text(errors="replace").startswith(MARKER)
        except OSError as exc:
            raise ReportError(f"{path} cannot be read ({exc.strerror}); choose another "
                              f"directory") from None
        if not ours:
            raise ReportError(f"{path} exists and was not written by grl-props; "
                              f"choose another directory or remove it")


def write_report(result: StatisticalResult, directory: str | Path, *,
                 diagnosis: str | None = None) -> Path:
    """Write the report of ``result`` into ``directory``; return the path of ``index.html``.

    ``diagnosis``: the text of ``grl-props diagnose`` (``Diagnosis.text()``), shown first.

    Creates the directory if needed. Raises :class:`ReportError` (and writes nothing) if any of
    the files it writes exists without the grl-props marker (:func:`check_report_directory`).
    """
    directory = Path(directory)
    check_report_directory(directory)
    directory.mkdir(parents=True, exist_ok=True)
    svgs = {
        "latents.svg": _latents_svg(result),
        "probe_bits.svg": _probe_bits_svg(result),
        "leakage.svg": _leakage_svg(result),
        "training.svg": _training_svg(result),
    }
    for name, svg in svgs.items():
        (directory / name).write_text(MARKER + "\n" + svg)
    index = directory / "index.html"
    index.write_text(_index_html(result, list(svgs), diagnosis))
    return index


# ---------------------------------------------------------------------------------------------
# A tiny SVG canvas


class _Canvas:
    """Axes in data coordinates mapped onto an SVG of ``width`` x ``height`` pixels."""

    def __init__(self, width: int, height: int, xlim: tuple[float, float],
                 ylim: tuple[float, float], title: str, xlabel: str = "", ylabel: str = "",
                 left: int = 50, bottom: int = 36) -> None:
        self.w, self.h, self.left, self.bottom = width, height, left, bottom
        self.top, self.right = 24, 10
        self.xlim, self.ylim = _pad(xlim), _pad(ylim)
        self.parts = [f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="12">'
                      f'{html.escape(title)}</text>']
        x0, y0 = self.left, height - self.bottom
        self.parts.append(f'<rect x="{x0}" y="{self.top}" width="{width - x0 - self.right}" '
                          f'height="{y0 - self.top}" fill="none" stroke="#999"/>')
        for t in np.linspace(*self.ylim, 5):
            self.parts.append(f'<text x="{x0 - 4}" y="{self.py(t) + 3:.1f}" text-anchor="end" '
                              f'font-size="9">{t:.2g}</text>')
        if xlabel:
            self.parts.append(f'<text x="{(x0 + width) / 2}" y="{height - 4}" '
                              f'text-anchor="middle" font-size="10">{html.escape(xlabel)}</text>')
        if ylabel:
            self.parts.append(f'<text x="12" y="{(self.top + y0) / 2}" font-size="10" '
                              f'transform="rotate(-90 12 {(self.top + y0) / 2})" '
                              f'text-anchor="middle">{html.escape(ylabel)}</text>')

    def px(self, x: float) -> float:
        lo, hi = self.xlim
        return self.left + (x - lo) / (hi - lo) * (self.w - self.left - self.right)

    def py(self, y: float) -> float:
        lo, hi = self.ylim
        return self.h - self.bottom - (y - lo) / (hi - lo) * (self.h - self.bottom - self.top)

    def dot(self, x: float, y: float, colour: str, r: float = 2.0, opacity: float = 0.7) -> None:
        if np.isfinite(x) and np.isfinite(y):
            self.parts.append(f'<circle cx="{self.px(x):.1f}" cy="{self.py(y):.1f}" r="{r}" '
                              f'fill="{colour}" fill-opacity="{opacity}"/>')

    def line(self, xs: Sequence[float], ys: Sequence[float], colour: str, width: float = 1.0,
             opacity: float = 1.0) -> None:
        pts = " ".join(f"{self.px(x):.1f},{self.py(y):.1f}" for x, y in zip(xs, ys, strict=False)
                       if np.isfinite(x) and np.isfinite(y))
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" '
                          f'stroke-width="{width}" stroke-opacity="{opacity}"/>')

    def band(self, y_lo: float, y_hi: float, colour: str, label: str) -> None:
        top, bottom = self.py(min(y_hi, self.ylim[1])), self.py(max(y_lo, self.ylim[0]))
        width = self.w - self.left - self.right
        self.parts.append(f'<rect x="{self.left}" y="{top:.1f}" width="{width}" '
                          f'height="{max(bottom - top, 0):.1f}" fill="{colour}" '
                          f'fill-opacity="0.15"/>')
        self.parts.append(f'<text x="{self.w - self.right - 4}" y="{top + 11:.1f}" '
                          f'text-anchor="end" font-size="9" fill="#555">'
                          f'{html.escape(label)}</text>')

    def text(self, x: float, y: float, s: str, size: int = 9, anchor: str = "middle") -> None:
        self.parts.append(f'<text x="{self.px(x):.1f}" y="{y:.1f}" text-anchor="{anchor}" '
                          f'font-size="{size}">{html.escape(s)}</text>')

    def svg(self) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
                f'font-family="sans-serif">' + "".join(self.parts) + "</svg>\n")


def _pad(lim: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(lim[0]), float(lim[1])
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return 0.0, 1.0
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.05 * (hi - lo)
    return lo - pad, hi + pad


def _row(svgs: list[str]) -> str:
    """Place several SVG panels side by side in one SVG."""
    width = sum(int(s.split('width="')[1].split('"')[0]) for s in svgs)
    height = max(int(s.split('height="')[1].split('"')[0]) for s in svgs)
    out, x = [], 0
    for s in svgs:
        w = int(s.split('width="')[1].split('"')[0])
        out.append(s.replace("<svg ", f'<svg x="{x}" ', 1))
        x += w
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
            + "".join(out) + "</svg>\n")


# ---------------------------------------------------------------------------------------------
# The four plots


def _pca2(z: np.ndarray) -> np.ndarray:
    z = np.nan_to_num(z - z.mean(axis=0))
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt[:2].T if vt.shape[0] >= 2 else np.c_[z[:, :1], np.zeros(len(z))]


def _latents_svg(result: StatisticalResult) -> str:
    run, seed_index = result.run, 0
    labels = run.labels[seed_index]
    rng = np.random.default_rng(0)
    panels_z = {arm: z[seed_index] for arm, z in run.latents.items()}
    shown = rng.permutation(len(labels))[:400]  # a subsample keeps the SVG small
    svgs = []
    for arm, z in panels_z.items():
        xy = _pca2(np.asarray(z, dtype=float))[shown]
        c = _Canvas(260, 240, (xy[:, 0].min(), xy[:, 0].max()), (xy[:, 1].min(), xy[:, 1].max()),
                    f"{arm} latents, PCA (seed {run.seeds[seed_index]})", "PC1", "PC2")
        for (x, y), label in zip(xy, labels[shown], strict=True):
            c.dot(x, y, _CLASS_COLOURS[int(label) % len(_CLASS_COLOURS)], r=1.6)
        svgs.append(c.svg())
    return _row(svgs)


def _probe_bits_svg(result: StatisticalResult) -> str:
    scores = result.run.scores
    judged = result.config.judged_probe
    arms = [a for a in _ARM_COLOURS if a in scores[0].probes[judged.name]]
    values_all = [s.probes[judged.name][a].usable_information_bits for s in scores for a in arms]
    finite = [v for v in values_all if np.isfinite(v)] or [0.0]
    c = _Canvas(460, 240, (-0.5, len(arms) - 0.5), (min(min(finite), 0.0), max(max(finite), 1.0)),
                f"{judged.description}: usable information per arm (bits, held out), one dot "
                f"per seed", "", "bits")
    rng = np.random.default_rng(0)
    for i, arm in enumerate(arms):
        values = [s.probes[judged.name][arm].usable_information_bits for s in scores]
        for v in values:
            c.dot(i + rng.uniform(-0.15, 0.15), v, _ARM_COLOURS.get(arm, "#333"), r=3)
        c.text(i, 240 - 20, arm, size=10)
    return c.svg()


def _leakage_svg(result: StatisticalResult) -> str:
    d = result.detail
    ct = d.contract
    leak = np.asarray(d.leakage, dtype=float)
    ctl = np.asarray(d.control_leakage if d.control_leakage is not None else [], dtype=float)
    finite = np.r_[leak[np.isfinite(leak)], ctl[np.isfinite(ctl)], 0.0, ct.tau + ct.delta]
    ylim = (min(finite.min(), -0.05), max(finite.max(), 0.4))
    c = _Canvas(420, 240, (-0.5, len(leak) - 0.5), ylim,
                "per-seed leakage: bits over the permutation null", "seed", "leakage (bits)")
    c.band(c.ylim[0], ct.tau, "#55a868", f"≤ τ = {ct.tau:g}")
    c.band(ct.tau + ct.delta, c.ylim[1], "#c44e52", f"≥ τ+Δ = {ct.tau + ct.delta:g}")
    c.line([c.xlim[0], c.xlim[1]], [ct.threshold, ct.threshold], "#555", 0.8, 0.6)
    for i, v in enumerate(leak):
        c.dot(i, v if np.isfinite(v) else c.ylim[1], _ARM_COLOURS["reversal"], r=3.5, opacity=0.9)
    for i, v in enumerate(ctl):
        c.dot(i, v, _ARM_COLOURS["control"], r=3.5, opacity=0.9)
    return c.svg()


def _training_svg(result: StatisticalResult) -> str:
    svgs = []
    steps = result.config.training.steps
    every = result.config.training.record_every
    probs = np.asarray(result.config.simulation.class_probs)
    label_entropy = float(-(probs * np.log(probs)).sum())  # nats: the adversary's CE at chance
    for name in ("reconstruction", "adversary"):
        curves = {arm: c[name] for arm, c in result.run.curves.items()}
        values = np.concatenate([v.ravel() for v in curves.values()])
        values = values[np.isfinite(values)]
        hi = float(np.quantile(values, 0.99)) if len(values) else 1.0
        if name == "adversary":
            hi = max(hi, 1.1 * label_entropy)
        c = _Canvas(320, 220, (0, steps), (0.0, hi), f"{name} loss per seed", "step", "loss")
        for arm, v in curves.items():
            xs = [min(i * every, steps - 1) for i in range(v.shape[1])]
            for row in v:
                c.line(xs, np.minimum(row, hi), _ARM_COLOURS.get(arm, "#333"), 0.8, 0.35)
        if name == "adversary":  # at chance the adversary's cross-entropy is H(Y)
            c.line([0, steps], [label_entropy, label_entropy], "#555", 0.8, 0.8)
            c.text(steps * 0.02, c.py(label_entropy) - 3, f"H(Y) = {label_entropy:.2f} nats",
                   anchor="start")
        svgs.append(c.svg())
    return _row(svgs)


# ---------------------------------------------------------------------------------------------
# The page


def _index_html(result: StatisticalResult, svgs: list[str], diagnosis: str | None = None) -> str:
    d = result.detail
    colour = {"pass": "#2e7d32", "fail": "#c62828", "invalid": "#ef6c00"}[d.outcome]
    rows = []
    other = result.config.probes[1]
    for s, L in zip(result.run.scores, d.leakage, strict=True):
        judged = s.probes[result.config.judged_probe.name]
        cells = ([str(s.seed)] + [f"{judged[a].usable_information_bits:+.3f}" for a in judged]
                 + [f"{judged[a].macro_f1:.3f}" for a in judged] + [f"{L:+.3f}"]
                 + [f"{s.leakage('reversal', other.name):+.3f}"])
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    arm_names = list(result.run.scores[0].probes[result.config.judged_probe.name])
    head = (["seed"] + [f"bits {a}" for a in arm_names] + [f"F1 {a}" for a in arm_names]
            + ["leakage (bits)", f"leakage, {other.description} (not judged)"])
    table = ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
             + "".join(rows) + "</table>")
    images = "".join(f'<p><img src="{name}" alt="{name}"></p>' for name in svgs)
    payload = html.escape(json.dumps(result.to_json(), indent=1, default=str))
    return f"""{MARKER}
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>grl-props: {html.escape(result.layer_name)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px;font-size:12px}}
</style></head><body>
<h1>Label removal: <span style="color:{colour}">{d.outcome}</span></h1>
{"" if diagnosis is None else f"<h2>Diagnosis</h2><pre>{html.escape(diagnosis)}</pre>"}
<p><b>{html.escape(result.layer_name)}</b> — {html.escape(result.summary())}</p>
<p>Contract: {html.escape(d.contract.describe(d.judged.unit))}. Alpha: {html.escape(result.alpha_note)}.
Judged: {html.escape(d.judged.probe)}, {html.escape(d.judged.measure)} in
{html.escape(d.judged.unit)} over {html.escape(d.judged.null)}.
Blue: reversal arm; red: control (no reversal); grey: reversal latents with rows permuted
(the null).</p>
{images}
<h2>Per seed</h2>{table}
<details><summary>JSON</summary><pre>{payload}</pre></details>
</body></html>
"""
