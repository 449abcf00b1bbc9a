"""HTML report of a label-removal verdict, its plots drawn by matplotlib as static SVG files.

:func:`write_report` writes ``index.html`` and SVG files into a directory; the page opens
offline (no script, no remote resource): a PCA scatter of the probe latents per arm with a
class legend, the judged probe's usable information per arm and its permutation null, one dot
per seed, per-seed leakage against the ``tau`` and ``tau + delta`` bands, training curves (the
adversary's against the label entropy H(Y), its chance level), and — when training checkpoints
were scored (``grl-props diagnose``) — the judged leakage across training. matplotlib is an
extra (``grl-props[report]``): without it, :func:`require_matplotlib` says so in one sentence.
Every file it writes starts with a marker comment; a file of the same name without the marker is
never overwritten (``ReportError``), and nothing else in the directory is touched.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from grl_props.label_removal import StatisticalResult

__all__ = ["MARKER", "ReportError", "ReportUnavailable", "check_report_directory",
           "require_matplotlib", "write_report"]

#: First line of every file this module writes; files without it are never overwritten.
MARKER = "<!-- written by grl-props report -->"

_CLASS_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
_ARM_COLOURS = {"reversal": "#4c72b0", "control": "#c44e52", "shuffled reversal": "#7f7f7f",
                "shuffled control": "#bcbd22"}
_FILES = ("index.html", "latents.svg", "probe_bits.svg", "leakage.svg", "training.svg",
          "checkpoints.svg")


class ReportError(FileExistsError):
    """The report would overwrite a file that grl-props did not write."""


class ReportUnavailable(ImportError):
    """matplotlib, which draws the report's plots, is not installed."""


def require_matplotlib() -> None:
    """Raise :class:`ReportUnavailable` with one sentence unless matplotlib can be imported;
    callers check before a long run."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportUnavailable("--report draws its plots with matplotlib, which is not "
                                "installed: pip install 'grl-props[report]'") from None


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
    require_matplotlib()
    directory.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, str | None] = {
        "latents.svg": _latents_svg(result),
        "probe_bits.svg": _probe_bits_svg(result),
        "leakage.svg": _leakage_svg(result),
        "training.svg": _training_svg(result),
        "checkpoints.svg": _checkpoints_svg(result),
    }
    svgs = {name: svg for name, svg in drawn.items() if svg is not None}
    for name, svg in svgs.items():
        (directory / name).write_text(MARKER + "\n" + svg)
    index = directory / "index.html"
    index.write_text(_index_html(result, list(svgs), diagnosis))
    return index


# ---------------------------------------------------------------------------------------------
# The plots (matplotlib's object API: no pyplot state, no display needed)


def _figure(width: float, height: float, columns: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, columns, squeeze=False)[0]
    return fig, axes


def _svg(fig: Any) -> str:
    """The figure as SVG text without the XML declaration (so our marker can come first),
    reproducible (fixed ids, no date)."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "grl-props", "svg.fonttype": "none"}):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": "grl-props"})
    text = out.getvalue()
    return text[text.index("<svg"):]


def _pca2(z: np.ndarray) -> np.ndarray:
    z = np.nan_to_num(z - z.mean(axis=0))
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    return z @ vt[:2].T if vt.shape[0] >= 2 else np.c_[z[:, :1], np.zeros(len(z))]


def _latents_svg(result: StatisticalResult) -> str:
    run, seed_index = result.run, 0
    labels = np.asarray(run.labels[seed_index])
    shown = np.random.default_rng(0).permutation(len(labels))[:600]  # keeps the SVG small
    fig, axes = _figure(4.2 * len(run.latents), 3.8, len(run.latents))
    for ax, (arm, z) in zip(axes, run.latents.items(), strict=True):
        xy = _pca2(np.asarray(z[seed_index], dtype=float))[shown]
        for label in np.unique(labels):
            mine = labels[shown] == label
            ax.scatter(xy[mine, 0], xy[mine, 1], s=6, alpha=0.7,
                       color=_CLASS_COLOURS[int(label) % len(_CLASS_COLOURS)],
                       label=f"class {label} ({np.mean(labels == label):.0%})")
        ax.set(title=f"{arm} latents, PCA (seed {run.seeds[seed_index]})", xlabel="PC1",
               ylabel="PC2")
    axes[-1].legend(title="label", loc="best", fontsize=8)
    return _svg(fig)


def _probe_bits_svg(result: StatisticalResult) -> str:
    scores = result.run.scores
    judged = result.config.judged_probe
    arms = [a for a in _ARM_COLOURS if a in scores[0].probes[judged.name]]
    fig, axes = _figure(6.0, 3.6)
    ax = axes[0]
    rng = np.random.default_rng(0)
    for i, arm in enumerate(arms):
        values = [s.probes[judged.name][arm].usable_information_bits for s in scores]
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=22,
                   color=_ARM_COLOURS[arm], label=arm)
    ax.axhline(0.0, color="#999", linewidth=0.8)
    ax.set_xticks(range(len(arms)), arms)
    ax.set(title=f"usable information per arm, one dot per seed\n({judged.description})",
           ylabel="bits (held-out cells)")
    return _svg(fig)


def _leakage_svg(result: StatisticalResult) -> str:
    d = result.detail
    ct = d.contract
    leak = np.asarray(d.leakage, dtype=float)
    seeds = list(result.run.seeds)
    fig, axes = _figure(7.5, 3.6)
    ax = axes[0]
    ax.axhspan(-1.0, ct.tau, color="#55a868", alpha=0.15, label=f"≤ τ = {ct.tau:g}")
    ax.axhspan(ct.tau + ct.delta, 10.0, color="#c44e52", alpha=0.12,
               label=f"≥ τ+Δ = {ct.tau + ct.delta:g}")
    ax.axhline(ct.threshold, color="#555", linewidth=0.8, linestyle="--",
               label=f"counted above {ct.threshold:g}")
    x = np.arange(len(leak))
    ax.scatter(x, np.where(np.isfinite(leak), leak, np.nan), s=30,
               color=_ARM_COLOURS["reversal"], label="reversal", zorder=3)
    if d.control_leakage is not None:
        ax.scatter(x, np.asarray(d.control_leakage, dtype=float), s=30,
                   color=_ARM_COLOURS["control"], label="control (no reversal)", zorder=3)
    values = np.r_[leak, d.control_leakage or [], 0.0, ct.tau + ct.delta]
    values = values[np.isfinite(values)]
    ax.set_ylim(min(values.min(), 0.0) - 0.05, max(values.max(), 0.3) + 0.05)
    ax.set_xticks(x, [str(s) for s in seeds], rotation=45, fontsize=8)
    ax.set(title="per-seed leakage over the permutation null", xlabel="seed",
           ylabel=f"leakage ({d.judged.unit})")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _svg(fig)


def _training_svg(result: StatisticalResult) -> str:
    steps = result.config.training.steps
    every = result.config.training.record_every
    probs = np.asarray(result.config.simulation.class_probs)
    label_entropy = float(-(probs * np.log(probs)).sum())  # nats: the adversary's CE at chance
    fig, axes = _figure(9.0, 3.4, 2)
    for ax, name in zip(axes, ("reconstruction", "adversary"), strict=True):
        for arm, curves in result.run.curves.items():
            v = np.asarray(curves[name], dtype=float)
            xs = np.minimum(np.arange(v.shape[1]) * every, steps - 1)
            for k, row in enumerate(v):
                ax.plot(xs, row, color=_ARM_COLOURS.get(arm, "#333"), linewidth=0.8,
                        alpha=0.4, label=arm if k == 0 else None)
        if name == "adversary":  # at chance the adversary's cross-entropy is H(Y)
            ax.axhline(label_entropy, color="#333", linestyle="--", linewidth=1.0,
                       label=f"H(Y) = {label_entropy:.2f} nats (chance)")
        ax.set(title=f"{name} loss, one line per seed", xlabel="step", ylabel="loss (nats)"
               if name == "adversary" else "loss")
        ax.legend(fontsize=7)
    return _svg(fig)


def _checkpoints_svg(result: StatisticalResult) -> str | None:
    """Judged leakage across training (median and each seed), when checkpoints were scored."""
    points = sorted(result.run.checkpoint_leakage)
    if not points:
        return None
    steps = [*points, result.config.training.steps]
    per_seed = np.array([[*(result.run.checkpoint_leakage[p][i] for p in points), leak]
                         for i, leak in enumerate(result.detail.leakage)], dtype=float)
    ct = result.detail.contract
    fig, axes = _figure(6.0, 3.4)
    ax = axes[0]
    for row in per_seed:
        ax.plot(steps, row, color=_ARM_COLOURS["reversal"], alpha=0.3, linewidth=0.8)
    ax.plot(steps, np.nanmedian(per_seed, axis=0), color=_ARM_COLOURS["reversal"], marker="o",
            linewidth=2.0, label="median over seeds")
    ax.axhline(ct.tau, color="#55a868", linestyle="--", linewidth=1.0, label=f"τ = {ct.tau:g}")
    ax.set(title="judged leakage across training", xlabel="step",
           ylabel=f"leakage ({result.detail.judged.unit})")
    ax.legend(fontsize=7)
    return _svg(fig)


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
pre{{white-space:pre-wrap;background:#f6f6f6;padding:0.6em}}img{{max-width:100%}}
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
