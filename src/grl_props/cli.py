"""``grl-props check | diagnose | calibrate``: the battery and verdict, triage, error rates.

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
import contextlib
import functools
import json
import math
import os
import shlex
import stat
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grl_props import __version__
from grl_props.adapters import CLAIMS, LayerUnderTest, SpecError, default_layers, load_layer
from grl_props.contracts import (
    CONTRACTS,
    DEFAULT_CONTRACT,
    ContractError,
    resolve_contract,
    verdict_not_run,
)
from grl_props.families import ADVERSARY_FAMILIES, DEFAULT_ADVERSARY
from grl_props.matrix import Progress, render_details, render_matrix, render_warnings, short_names
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
    check.add_argument("--claim", action="append", default=[], choices=CLAIMS, dest="claims",
                       help="check a support the layers claim (repeatable); without it "
                            "torchscript/torch_export run only for layers that claim them "
                            "with __grl_props_claims__")
    check.add_argument("--contract", default=DEFAULT_CONTRACT, metavar="NAME",
                       help=f"what the layers promise: {', '.join(CONTRACTS)} (default "
                            f"{DEFAULT_CONTRACT}), or package.module:NAME of your own Contract; "
                            "the statistical verdict runs only under reverse")
    check.add_argument("--timeout", default=str(RunOptions.timeout), metavar="S",
                       help=f"time limit per property in seconds, above 0 (default {RunOptions.timeout:g})")
    check.add_argument("--no-properties", action="store_true", help="skip the property battery")
    check.add_argument("--no-stats", action="store_true", help="skip the statistical verdict")
    check.add_argument("--adversary", choices=ADVERSARY_FAMILIES, default=DEFAULT_ADVERSARY,
                       help="adversary family of the statistical verdict; its probe family is "
                            f"judged (linear: logistic regression, mlp: MLP; default "
                            f"{DEFAULT_ADVERSARY})")
    check.add_argument("--report", metavar="DIR", help="write an HTML report of the statistical verdict")
    diagnose = commands.add_parser(
        "diagnose", help="is it the layer, the training or the test? (weighs all three)",
        description="Run the core properties, then train the reference experiment through the "
        "layer and weigh three hypotheses for leakage (the layer, convergence, the setup), each "
        "with its evidence; exit 0 when nothing is wrong, 1 when a cause is found.",
    )
    diagnose.add_argument("spec", metavar="SPEC", help="package.module:Name or path/to/file.py:Name")
    diagnose.add_argument("--adversary", choices=ADVERSARY_FAMILIES, default=DEFAULT_ADVERSARY,
                          help=f"adversary family (default {DEFAULT_ADVERSARY})")
    diagnose.add_argument("--probe", choices=("logistic", "mlp"), default=None,
                          help="judged probe (default: the adversary family's own)")
    diagnose.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                          help="training steps (default: the family's measured recipe)")
    diagnose.add_argument("--seed", type=_nonnegative_int, default=0, metavar="N",
                          help="seed set and Hypothesis seed (default 0)")
    diagnose.add_argument("--alpha-arg", metavar="NAME", help="constructor argument that holds alpha")
    diagnose.add_argument("--json", metavar="PATH", help="also write the diagnosis as JSON to PATH")
    diagnose.add_argument("--report", metavar="DIR", help="write an HTML report with the diagnosis")
    calibrate = commands.add_parser(
        "calibrate", help="measure the verdict's error rates over many seed sets",
        description="Judge seed sets FIRST .. FIRST+N-1 of a layer as 'check' does, appending one "
        "JSON line per finished set to --out (rerun the same command to resume); or summarise "
        "results files with --summarize.",
    )
    calibrate.add_argument("spec", nargs="?", metavar="SPEC",
                           help="package.module:Name or path/to/file.py:Name")
    calibrate.add_argument("--sets", type=_positive_int, metavar="N", help="seed sets to judge")
    calibrate.add_argument("--first-set", type=_nonnegative_int, default=1000, metavar="K",
                           help="first seed set (default 1000; the design used sets 0-26)")
    calibrate.add_argument("--adversary", choices=ADVERSARY_FAMILIES, default=DEFAULT_ADVERSARY,
                           help=f"adversary family (default {DEFAULT_ADVERSARY})")
    calibrate.add_argument("--alpha-arg", metavar="NAME", help="constructor argument that holds alpha")
    where = calibrate.add_mutually_exclusive_group()
    where.add_argument("--jobs", type=int, default=1, metavar="N",
                       help="worker processes on this machine (joblib; -1 for every core; "
                            "default 1: here)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="run the sets on a Dask cluster, e.g. tcp://host:8786 (needs "
                            "grl-props[cluster])")
    calibrate.add_argument("--out", metavar="PATH", help="results file (JSON Lines), appended to")
    calibrate.add_argument("--summarize", nargs="+", metavar="PATH",
                           help="summarise results files instead of running sets")
    return parser


def _calibrate(args: argparse.Namespace) -> int:
    """``grl-props calibrate``: run seed sets into --out, or summarise results files.

    Exit 0: every set judged / the measured rate is consistent with the stated one; 1: a set's
    layer raised or a worker died / the measured rate is not consistent with the stated one.
    """
    from grl_props.calibration import (
        CalibrationError,
        CalibrationInterrupted,
        calibrate,
        read_results,
        summarize,
    )

    try:
        if args.summarize:
            if args.spec or args.sets or args.out:
                raise UsageError("--summarize reads results files; give no SPEC, --sets or --out "
                                 "with it")
            lines = summarize(read_results([Path(p) for p in args.summarize]))
            print("\n".join(lines))
            return EXIT_FAIL if any("NOT consistent" in line for line in lines) else EXIT_OK
        if not (args.spec and args.sets and args.out):
            raise UsageError("calibrate needs SPEC, --sets N and --out PATH (or --summarize "
                             "PATH to read results)")
        run = calibrate(args.spec, sets=args.sets, first_set=args.first_set,
                        adversary=args.adversary, alpha_arg=args.alpha_arg, out=Path(args.out),
                        jobs=args.jobs, scheduler=args.scheduler,
                        progress=lambda line: print(line, file=sys.stderr, flush=True))
    except CalibrationError as exc:
        raise UsageError(str(exc)) from None
    except CalibrationInterrupted as exc:
        print(f"grl-props: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(f"{args.out}: {run.ran} seed sets judged now, {run.already_done} were already there"
          + (f", {len(run.failures)} could not be judged" if run.failures else ""))
    for failure in run.failures:
        print(f"  set {failure.describe()[5:]}")
    return EXIT_FAIL if run.failures else EXIT_OK


def _diagnose(args: argparse.Namespace) -> int:
    """``grl-props diagnose``: findings on stdout, the conclusion last; exit 0 for ``none``."""
    from grl_props.diagnosis import diagnose

    json_path = _json_target(args.json) if args.json else None
    report_dir = _report_target(args.report) if args.report else None
    if report_dir is not None:  # refuse before training, not after
        from grl_props.report import ReportError, check_report_directory

        try:
            check_report_directory(report_dir)
        except ReportError as exc:
            raise UsageError(f"--report: {exc}") from None
    layer = load_layer(args.spec, alpha_arg=args.alpha_arg)
    progress = Progress()
    from grl_props.label_removal import StatisticalError, StatisticalResult

    try:
        result = diagnose(layer, adversary=args.adversary, probe=args.probe, steps=args.steps,
                          seed=args.seed, background_control=_cores() >= 2,
                          progress=lambda stage, done, total: progress.stage(args.spec, stage,
                                                                             done, total))
    except StatisticalError as exc:  # the layer as given cannot be trained at all
        raise UsageError(str(exc)) from None
    print(f"diagnosis of {args.spec}:")
    print(result.text())
    if report_dir is not None and result.verdict is None:
        print(f"report: not written — nothing was trained (conclusion: {result.conclusion})")
    elif report_dir is not None and isinstance(result.verdict, StatisticalResult):
        from grl_props.report import ReportError, write_report

        try:
            print(f"report: {write_report(result.verdict, report_dir, diagnosis=result.text())}")
        except ReportError as exc:  # a file of the user's appeared meanwhile: never overwrite it
            raise UsageError(f"--report: {exc}") from None
    if json_path is not None:
        _write_payload(json_path, {"tool": _MARKER, "version": __version__, "spec": args.spec,
                                   "diagnosis": result.to_json()})
    return EXIT_OK if result.conclusion == "none" else EXIT_FAIL


def _whole_number(text: str, least: int, words: str) -> int:
    """``text`` as an int of at least ``least``, or one sentence (argparse prefixes the option)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < least:
        raise argparse.ArgumentTypeError(f"must be a whole number {words}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, "of at least 1")


def _nonnegative_int(text: str) -> int:
    return _whole_number(text, 0, "of 0 or more")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``grl-props`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        command = {"diagnose": _diagnose, "calibrate": _calibrate}.get(args.command, _check)
        return command(args)
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
    timeout = _timeout(args.timeout)
    try:
        contract = resolve_contract(args.contract)
    except ContractError as exc:
        raise UsageError(f"--contract: {exc}") from None
    no_verdict = verdict_not_run(contract)
    reversal = no_verdict is None
    if not args.specs and not reversal:
        raise UsageError(f"name the layers to check under the {contract.name} contract: the "
                         "built-in default layers are gradient reversal layers")
    if not reversal and args.no_properties:
        raise UsageError(f"--no-properties leaves nothing to run under the {contract.name} "
                         "contract: the statistical verdict runs only under reverse")
    if not reversal and args.report:
        raise UsageError(f"--report draws the statistical verdict, which runs only under the "
                         f"reverse contract, not {contract.name}")
    layers = [load_layer(spec, alpha_arg=args.alpha_arg, claims=args.claims, contract=contract)
              for spec in args.specs]
    if not layers:
        layers = default_layers()
        for layer in layers:
            layer.claims |= frozenset(args.claims)
    required = TIERS if args.tier == "all" else (args.tier,)
    options = RunOptions(max_examples=args.max_examples, seed=args.seed, timeout=timeout)
    progress = Progress()
    labels = short_names([layer.name for layer in layers])
    folders = _report_folders(labels)
    if report_dir is not None:  # refuse before training, not after
        from grl_props.report import ReportError, check_report_directory
        from grl_props.report_index import check_index

        for folder in folders:
            try:
                check_report_directory(report_dir / folder)
            except ReportError as exc:
                raise UsageError(f"--report: {exc}") from None
        try:
            check_index(report_dir)
        except ReportError as exc:
            raise UsageError(f"--report: {exc}") from None
    properties = [] if args.no_properties else all_properties(contract=contract)

    reports: list[LayerReport] = []
    for layer, label, folder in zip(layers, labels, folders, strict=True):
        report = run_battery(layer, options=options, properties=properties,
                             on_result=functools.partial(progress.property_done, label))
        if no_verdict is not None:
            report.note = "; ".join(n for n in (report.note, no_verdict) if n)
        elif not args.no_stats:
            report.statistical = _statistical(layer, label, args.seed, args.adversary, progress,
                                              None if report_dir is None else report_dir / folder)
        reports.append(report)

    _print_results(reports, required, properties_run=bool(properties))
    for layer, report in zip(layers, reports, strict=True):
        replay = _replay(layer, report, args, required)
        if replay:
            print(f"replay: {replay}")
    if report_dir is not None:
        _print_reports(report_dir, reports, required)
    if json_path is not None:
        _write_json(json_path, reports, required)
    return _exit_code(reports, required)


def _replay(layer: LayerUnderTest, report: LayerReport, args: argparse.Namespace,
            required: Sequence[str]) -> str:
    """The command that replays what failed for ``layer`` (same seed, examples and options), or
    ``""`` when nothing failed or the layer has no spec a new process can load."""
    properties_failed = bool(report.properties) and not report.ok(required)
    verdict = None if report.statistical is None else report.statistical.get("verdict")
    verdict_failed = verdict not in (None, "pass")
    if not (properties_failed or verdict_failed) or layer.spec is None:
        return ""
    words = ["grl-props", "check", layer.spec, "--seed", str(args.seed)]
    if args.contract != DEFAULT_CONTRACT:
        words += ["--contract", args.contract]
    if properties_failed:
        words += ["--max-examples", str(args.max_examples)]
        if args.tier != "core":
            words += ["--tier", args.tier]
        if _timeout(args.timeout) != RunOptions.timeout:
            words += ["--timeout", args.timeout]
    words += ["--no-stats"] if not verdict_failed else []
    words += ["--no-properties"] if not properties_failed else []
    if verdict_failed:
        words += ["--adversary", args.adversary]
    if args.alpha_arg:
        words += ["--alpha-arg", args.alpha_arg]
    for claim in sorted(set(args.claims)):
        words += ["--claim", claim]
    return " ".join(shlex.quote(w) for w in words)


def _print_reports(report_dir: Path, reports: list[LayerReport], required: Sequence[str]) -> None:
    """Print the path of every report written, then write and print the index over all layers."""
    from grl_props.report import ReportError
    from grl_props.report_index import write_index

    for report in reports:
        written = None if report.statistical is None else report.statistical.get("report")
        if written:
            print(f"report: {written}")
    try:
        print(f"report index: {write_index(report_dir, reports, required)}")
    except ReportError as exc:  # a file of the user's appeared meanwhile: never overwrite it
        raise UsageError(f"--report: {exc}") from None


def _statistical(layer: LayerUnderTest, label: str, seed: int, adversary: str, progress: Progress,
                 report_folder: Path | None) -> dict[str, Any]:
    from grl_props.label_removal import StatisticalError, check_label_removal

    try:
        result = check_label_removal(
            layer, seed=seed, adversary=adversary, background_control=_cores() >= 2,
            progress=lambda stage, done, total: progress.stage(label, stage, done, total))
    except StatisticalError as exc:
        return {"verdict": "error", "summary": str(exc)}
    data = result.to_json()
    data.setdefault("summary", result.summary())
    if report_folder is not None:
        from grl_props.report import ReportError, write_report

        try:
            data["report"] = str(write_report(result, report_folder))
        except ReportError as exc:  # a file of the user's is in the way: never overwrite it
            raise UsageError(f"--report: {exc}") from None
    return data


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"--timeout must be a number of seconds above 0, got {text!r}")
    return value


def _cores() -> int:
    """CPU cores this process may use (the control arm trains beside the reversal arm on two);
    1 inside a pytest-xdist worker, whose sibling workers already hold the other cores."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _report_folders(labels: Sequence[str]) -> list[str]:
    """One folder name per layer: the label made file-safe, made unique (``-2``, ``-3``, ...)
    where two labels become the same name."""
    folders: list[str] = []
    for label in labels:
        base = name = _safe(label)
        number = 1
        while name in folders:
            number += 1
            name = f"{base}-{number}"
        folders.append(name)
    return folders


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


def _print_results(reports: list[LayerReport], required: Sequence[str], *, properties_run: bool) -> None:
    if properties_run:
        print(render_matrix(reports, required))
        details = render_details(reports)
        if details:
            print("\n" + details)
        warnings = render_warnings(reports)  # collected in the children, shown once here
        if warnings:
            print("\n" + warnings)
    stats = [(r.spec, r.statistical) for r in reports if r.statistical is not None]
    if stats:
        print("\nstatistical verdict (the full line of each layer is in --json and --report):")
        for spec, statistical in stats:
            line = statistical.get("short_summary") or statistical.get("summary")
            print(f"  {spec}: {line or statistical.get('verdict')}")
        contracts = sorted({s["contract_text"] for _, s in stats if "contract_text" in s})
        for text in contracts:  # once per run, not once per layer
            print(f"  {text}")
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
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"--json {path_text!r}: the directory {str(path.parent)!r} is not "
                         "writable")
    if path.exists() and not (_empty_file(path) or _written_by_us(path)):
        raise UsageError(f"--json {path_text!r} exists and was not written by grl-props; "
                         "refusing to overwrite it")
    return path


def _empty_file(path: Path) -> bool:
    """An existing empty regular file (``mktemp``'s): nothing of the user's to lose."""
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


def _written_by_us(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("tool") == _MARKER
    except (OSError, ValueError, AttributeError):
        return False


def _report_target(path_text: str) -> Path:
    """The --report directory, refused up front (before any run) when it is a file or when
    matplotlib, which draws the plots, is missing."""
    from grl_props.report import ReportUnavailable, require_matplotlib

    path = Path(path_text)
    if path.exists() and not path.is_dir():
        raise UsageError(f"--report {path_text!r} exists and is not a directory")
    try:
        require_matplotlib()
    except ReportUnavailable as exc:
        raise UsageError(str(exc)) from None
    return path


def _write_json(path: Path, reports: list[LayerReport], required: Sequence[str]) -> None:
    _write_payload(path, {
        "tool": _MARKER,
        "version": __version__,
        "required_tiers": list(required),
        "results": [r.to_json(required) for r in reports],
    })


def _write_payload(path: Path, payload: dict[str, Any]) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".grl-props-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as stream:
            if hasattr(os, "fchmod"):  # mkstemp makes it 0600: keep the old file's mode,
                os.fchmod(stream.fileno(), _mode_for(path))  # else the one open() would give
            json.dump(payload, stream, indent=2)
            stream.write("\n")
        os.replace(temporary, path)  # atomic: a reader never sees half a file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)  # never leave the temporary file behind
        raise


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mask = os.umask(0)  # the only way to read the umask is to set it; restored at once
        os.umask(mask)
        return 0o666 & ~mask


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
