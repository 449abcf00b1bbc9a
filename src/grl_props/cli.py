"""``grl-props check``: run the property battery and the statistical verdict on layers.

Exit codes (stable):

* 0 — every property of the required tiers passed (or was skipped with a reason) and the
  statistical verdict, when run, is ``pass``;
* 1 — a required property failed or errored, or the statistical verdict is ``fail``;
* 2 — usage or spec error (one sentence on stderr);
* 3 — the statistical verdict is ``invalid`` (the experiment could not see the label);
* 4 — internal error of grl-props (set ``GRL_PROPS_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grl_props import __version__
from grl_props.adapters import LayerUnderTest, SpecError, default_layers, load_layer
from grl_props.matrix import Progress, render_details, render_matrix, short_names
from grl_props.properties import TIERS, all_properties
from grl_props.runner import LayerReport, RunOptions, run_battery

__all__ = ["main"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INVALID, EXIT_INTERNAL = 0, 1, 2, 3, 4


class UsageError(Exception):
    """Bad command-line input; the message is one sentence."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grl-props", description="Property-based and statistical tests for gradient reversal layers.",
    )
    parser.add_argument("--version", action="version", version=f"grl-props {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check", help="run the battery (and the statistical verdict) on layers",
        description="Run every property on each layer and print a matrix; with no SPEC, run the "
        "reference layer and every known third-party layer that is installed.",
    )
    check.add_argument("specs", nargs="*", metavar="SPEC",
                       help="package.module:Name or path/to/file.py:Name")
    check.add_argument("--tier", choices=[*TIERS, "all"], default="core",
                       help="tiers that must pass for exit 0 (all tiers always run; default core)")
    check.add_argument("--json", metavar="PATH", help="also write results as JSON to PATH")
    check.add_argument("--max-examples", type=_positive_int, default=RunOptions.max_examples,
                       metavar="N",
                       help=f"Hypothesis examples per property (default {RunOptions.max_examples})")
    check.add_argument("--seed", type=_nonnegative_int, default=0, metavar="N",
                       help="seed for Hypothesis and for the statistical seed set (default 0)")
    check.add_argument("--alpha-arg", metavar="NAME", help="constructor argument that holds alpha")
    check.add_argument("--timeout", type=float, default=RunOptions.timeout, metavar="S",
                       help=f"time limit per property in seconds (default {RunOptions.timeout:g})")
    check.add_argument("--no-properties", action="store_true", help="skip the property battery")
    check.add_argument("--no-stats", action="store_true", help="skip the statistical verdict")
    check.add_argument("--report", metavar="DIR", help="write an HTML report of the statistical verdict")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``grl-props`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _check(args)
    except (SpecError, UsageError) as exc:
        print(f"grl-props: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("grl-props: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if os.environ.get("GRL_PROPS_DEBUG"):
            raise
        print(f"grl-props: internal error: {type(exc).__name__}: {exc} "
              "(rerun with GRL_PROPS_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def _check(args: argparse.Namespace) -> int:
    if args.no_properties and args.no_stats:
        raise UsageError("--no-properties and --no-stats together leave nothing to run")
    json_path = _json_target(args.json) if args.json else None
    report_dir = _report_target(args.report) if args.report else None
    if args.report and args.no_stats:
        raise UsageError("--report draws the statistical verdict, which --no-stats turns off")
    layers = [load_layer(spec, alpha_arg=args.alpha_arg) for spec in args.specs]
    if not layers:
        layers = default_layers()
    required = TIERS if args.tier == "all" else (args.tier,)
    options = RunOptions(max_examples=args.max_examples, seed=args.seed, timeout=args.timeout)
    progress = Progress()
    labels = short_names([layer.name for layer in layers])
    if report_dir is not None:  # refuse before training, not after
        from grl_props.report import ReportError, check_report_directory

        for label in labels:
            try:
                check_report_directory(report_dir / _safe(label))
            except ReportError as exc:
                raise UsageError(f"--report: {exc}") from None
    properties = [] if args.no_properties else all_properties()

    reports: list[LayerReport] = []
    for layer, label in zip(layers, labels, strict=True):
        report = run_battery(layer, options=options, properties=properties,
                             on_result=functools.partial(progress.property_done, label))
        if not args.no_stats:
            report.statistical = _statistical(layer, label, args.seed, progress, report_dir)
        reports.append(report)

    _print_results(reports, required, properties_run=bool(properties))
    if json_path is not None:
        _write_json(json_path, reports, required)
    return _exit_code(reports, required)


def _statistical(layer: LayerUnderTest, label: str, seed: int, progress: Progress,
                 report_dir: Path | None) -> dict[str, Any]:
    from grl_props.statistical import StatisticalError, check_label_removal

    try:
        result = check_label_removal(
            layer, seed=seed, progress=lambda stage, done, total: progress.stage(label, stage, done, total),
        )
    except StatisticalError as exc:
        return {"verdict": "error", "summary": str(exc)}
    data = result.to_json()
    data.setdefault("summary", result.summary())
    if report_dir is not None:
        from grl_props.report import ReportError, write_report

        try:
            data["report"] = str(write_report(result, report_dir / _safe(label)))
        except ReportError as exc:  # a file of the user's is in the way: never overwrite it
            raise UsageError(f"--report: {exc}") from None
    return data


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _print_results(reports: list[LayerReport], required: Sequence[str], *, properties_run: bool) -> None:
    if properties_run:
        print(render_matrix(reports, required))
        details = render_details(reports)
        if details:
            print("\n" + details)
    stats = [(r.spec, r.statistical) for r in reports if r.statistical is not None]
    if stats:
        print("\nstatistical verdict:")
        for spec, statistical in stats:
            print(f"  {spec}: {statistical.get('summary', statistical.get('verdict'))}")
    print()
    for report in reports:  # one closing line per layer, naming only what ran
        parts = []
        if properties_run:
            parts.append(f"{'/'.join(required)} {'OK' if report.ok(required) else 'FAILED'}")
        if report.statistical is not None:
            parts.append(f"label removal {report.statistical.get('verdict')}")
        print(f"{report.spec}: {'; '.join(parts)}")


def _exit_code(reports: list[LayerReport], required: Sequence[str]) -> int:
    verdicts = [r.statistical.get("verdict") for r in reports if r.statistical is not None]
    if not all(r.ok(required) for r in reports) or any(v in ("fail", "error") for v in verdicts):
        return EXIT_FAIL
    if "invalid" in verdicts:
        return EXIT_INVALID
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Output files: never overwrite what the user wrote.

_MARKER = "grl-props"


def _json_target(path_text: str) -> Path:
    path = Path(path_text)
    if path.is_dir():
        raise UsageError(f"--json {path_text!r} is a directory; give a file path")
    if not path.parent.exists():
        raise UsageError(f"--json {path_text!r}: the directory {str(path.parent)!r} does not exist")
    if path.exists() and not _written_by_us(path):
        raise UsageError(f"--json {path_text!r} exists and was not written by grl-props; "
                         "refusing to overwrite it")
    return path


def _written_by_us(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("tool") == _MARKER
    except (OSError, ValueError, AttributeError):
        return False


def _report_target(path_text: str) -> Path:
    path = Path(path_text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--report {path_text!r} exists and is not a directory")
    return path


def _write_json(path: Path, reports: list[LayerReport], required: Sequence[str]) -> None:
    payload = {
        "tool": _MARKER,
        "version": __version__,
        "required_tiers": list(required),
        "results": [r.to_json(required) for r in reports],
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".grl-props-", suffix=".json")
    with os.fdopen(handle, "w") as stream:
        json.dump(payload, stream, indent=2)
        stream.write("\n")
    os.replace(temporary, path)  # atomic: a reader never sees half a file


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
