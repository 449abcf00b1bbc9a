"""``grl-props calibrate``: measure the label-removal verdict's real error rates by varying seeds.

Seed set ``k`` is the verdict ``check_label_removal(layer, seed=k, adversary=...)`` gives, run
exactly as ``grl-props check`` runs it: sets ``k`` are disjoint and independent, so the
verdicts over many sets estimate the verdict's rates for that layer (the false-fail rate for a
layer that removes the label, the power for one that does not).

Contract of the results file (JSON Lines): one line per finished seed set, appended and flushed
as each set finishes, each line self-contained (spec, family, contract, per-seed leakage of the
judged probe and of the other probe, control leakage, verdict, seconds). A run that is stopped
loses at most the sets in flight: run the same command again and it trains only the sets the
file lacks (an incomplete last line, from a kill mid-write, is dropped). A file with lines
grl-props did not write, or sets of another layer or family, is refused, never changed.

Sets run through :func:`grl_props.parallel.map_seeds`: here (``jobs=1``), in joblib workers
(``jobs=N``), or on a Dask cluster (``scheduler="tcp://host:port"``, joblib's Dask backend);
every set runs single-threaded, so the per-seed numbers are identical whichever is used.
:func:`summarize` states the per-seed quantiles, the fractions the contract speaks of and each
verdict's rate with its exact (Clopper–Pearson) 95 % interval from scipy.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from grl_props import __version__
from grl_props.parallel import SeedFailure, map_seeds

__all__ = ["CalibrationError", "CalibrationInterrupted", "calibrate", "read_results", "summarize"]

MARKER = "grl-props calibrate"


class CalibrationError(ValueError):
    """A results file or request that calibrate cannot use; the message is one sentence."""


@dataclass(frozen=True)
class CalibrationRun:
    """What one ``calibrate`` call did: sets found in the file, sets run, sets that raised."""

    already_done: int
    ran: int
    failures: tuple[SeedFailure, ...]


def calibrate(spec: str, *, sets: int, first_set: int = 1000, adversary: str | None = None,
              alpha_arg: str | None = None, out: Path, jobs: int = 1,
              scheduler: str | None = None,
              progress: Callable[[str], None] | None = None) -> CalibrationRun:
    """Judge seed sets ``first_set .. first_set + sets - 1`` of ``spec`` that ``out`` lacks.

    ``jobs``: 1 runs here; N > 1 (or -1, every core) runs N joblib workers; ``scheduler``, a
    Dask scheduler address, runs the sets on that cluster (needs ``distributed``). Every
    finished set is appended to ``out`` at once. Sets whose layer raises are returned as
    failures and not written.
    """
    from grl_props.families import ADVERSARY_FAMILIES, DEFAULT_ADVERSARY

    adversary = adversary or DEFAULT_ADVERSARY
    if adversary not in ADVERSARY_FAMILIES:
        raise CalibrationError(f"adversary must be one of {', '.join(ADVERSARY_FAMILIES)}, "
                               f"got {adversary!r}")
    if sets < 1 or first_set < 0:
        raise CalibrationError(f"--sets must be 1 or more and --first-set 0 or more, got "
                               f"{sets} and {first_set}")
    n_jobs = _jobs(jobs)
    from grl_props.adapters import load_layer

    load_layer(spec, alpha_arg=alpha_arg)  # a spec that does not load: one sentence, no set run
    if scheduler is not None:
        _require_distributed()  # before --out is created or touched
    wanted = {"spec": spec, "adversary": adversary, "alpha_arg": alpha_arg}
    requested = range(first_set, first_set + sets)
    done = {r["set"] for r in _existing(out, wanted)} & set(requested)
    todo = [k for k in requested if k not in done]
    judge = partial(_judge_set, spec=spec, adversary=adversary, alpha_arg=alpha_arg)
    failures: list[SeedFailure] = []
    with _engine(scheduler) as cluster_jobs, out.open("a", encoding="utf-8") as sink:
        for k, record in _guarded(map_seeds(judge, todo, cluster_jobs if scheduler else n_jobs),
                                  out):
            if isinstance(record, SeedFailure):
                failures.append(record)
                if progress:
                    progress(f"set {k}: not judged — {record.describe()}")
                continue
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            if progress:
                progress(f"set {k}: {record['verdict']} (median {_median(record['leakage']):+.3f} "
                         f"bits, {record['seconds']:.1f} s)")
    return CalibrationRun(len(done), len(todo) - len(failures), tuple(failures))


class CalibrationInterrupted(RuntimeError):
    """A worker process died mid-run; the sets finished before are kept in the results file."""


def _guarded(results: Iterator[tuple[int, Any]], out: Path) -> Iterator[tuple[int, Any]]:
    """``results``, with a dead worker process told in one sentence."""
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    try:
        yield from results
    except TerminatedWorkerError:
        raise CalibrationInterrupted(
            f"a worker process died (killed, or the layer crashed the interpreter); every set "
            f"finished before is in {out}: rerun the same command to resume") from None


def _require_distributed() -> None:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CalibrationError("--scheduler needs Dask's distributed package: pip install "
                               "'grl-props[cluster]'") from None


def _jobs(jobs: int) -> int | None:
    if jobs == 0 or jobs < -1:
        raise CalibrationError(f"--jobs must be 1 or more (or -1 for every core), got {jobs}")
    return None if jobs == 1 else jobs


@contextlib.contextmanager
def _engine(scheduler: str | None) -> Iterator[int | None]:
    """Without a scheduler: nothing to set up. With one: a Dask client and joblib's Dask
    backend, so ``map_seeds`` sends every set to the cluster."""
    if scheduler is None:
        yield None
        return
    _require_distributed()
    from distributed import Client
    from joblib import parallel_config

    try:
        client = Client(scheduler, timeout=30)
    except (OSError, ValueError, TimeoutError) as exc:
        raise CalibrationError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        with parallel_config(backend="dask"):
            yield -1
    finally:
        client.close()


def _judge_set(k: int, *, spec: str, adversary: str, alpha_arg: str | None) -> dict[str, Any]:
    """One seed set, as ``grl-props check --no-properties --seed k`` judges it: the record."""
    from grl_props.adapters import load_layer
    from grl_props.label_removal import check_label_removal

    start = time.perf_counter()
    result = check_label_removal(load_layer(spec, alpha_arg=alpha_arg), seed=k,
                                 adversary=adversary)
    judged, other = result.config.probes
    scores = result.run.scores
    return {
        "tool": MARKER, "version": __version__, "spec": spec, "adversary": adversary,
        "alpha_arg": alpha_arg, "set": k, "seeds": list(result.run.seeds),
        "verdict": result.verdict, "judged_probe": judged.name,
        "measure": "usable_information_bits", "null": "permutation",
        "leakage": [s.leakage("reversal", judged.name) for s in scores],
        "control": [s.leakage("control", judged.name) for s in scores],
        "reported_probe": other.name,
        "reported_leakage": [s.leakage("reversal", other.name) for s in scores],
        "contract": result.contract.to_json(),
        "seconds": time.perf_counter() - start,
    }


def _existing(out: Path, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    """The records already in ``out``, checked to be ours and of the same spec, family and
    alpha argument — only then is an incomplete last line (a kill mid-write) dropped; ``out``
    is created when missing. A file that fails a check is refused and left as it is."""
    if out.is_dir():
        raise CalibrationError(f"--out {out} is a directory; give a file")
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.touch()
        return []
    text = _read(out)
    complete, tail = _split_tail(text)
    records = _parse(complete, out)
    if tail and not tail.startswith(f'{{"tool": "{MARKER}"'):
        raise CalibrationError(f"{out}'s last line was not written by grl-props calibrate; give "
                               f"another file (it is left as it is)")
    for record in records:
        if {key: record.get(key) for key in wanted} != wanted:
            raise CalibrationError(
                f"--out {out} holds seed sets of {record.get('spec')} (adversary "
                f"{record.get('adversary')}, alpha argument {record.get('alpha_arg')}); give "
                f"another file, or the same layer and options to add sets to it")
    if tail:  # ours, cut off by a kill: drop it so the next line starts clean
        with out.open("r+", encoding="utf-8") as f:
            f.truncate(len(complete.encode("utf-8")))
    return records


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CalibrationError(f"{path} is not a text file written by grl-props calibrate; give "
                               f"another file (it is left as it is)") from None
    except OSError as exc:
        raise CalibrationError(f"{path} cannot be read ({exc.strerror})") from None


def _split_tail(text: str) -> tuple[str, str]:
    """``text`` as (complete lines, an unfinished last line or "")."""
    if not text or text.endswith("\n"):
        return text, ""
    cut = text.rfind("\n") + 1
    return text[:cut], text[cut:]


_FIELDS = ("spec", "adversary", "set", "verdict", "judged_probe", "reported_probe", "leakage",
           "control", "reported_leakage", "contract")


def _parse(text: str, path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or record.get("tool") != MARKER:
            raise CalibrationError(f"{path} line {number} was not written by grl-props "
                                   f"calibrate; give another file (it is left as it is)")
        missing = [key for key in _FIELDS if key not in record]
        if missing:
            raise CalibrationError(f"{path} line {number} lacks {', '.join(missing)}; it was "
                                   f"changed after grl-props calibrate wrote it")
        records.append(record)
    return records


def read_results(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every record of the results files, one per seed set (a set in two files counts once,
    when both say the same)."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for path in paths:
        if not path.is_file():
            raise CalibrationError(f"{path} is not a file")
        complete, _ = _split_tail(_read(path))  # a line cut off by a kill is not a set
        for record in _parse(complete, path):
            key = (record["spec"], record["adversary"], record.get("alpha_arg"), record["set"])
            if key in by_key and by_key[key]["leakage"] != record["leakage"]:
                raise CalibrationError(f"seed set {record['set']} of {record['spec']} appears "
                                       f"twice with different results")
            by_key[key] = record
    return [by_key[k] for k in sorted(by_key, key=lambda k: (str(k[:3]), k[3]))]


def summarize(records: Sequence[dict[str, Any]]) -> list[str]:
    """Lines stating, per layer and family: per-seed leakage quantiles, the fractions the
    contract speaks of, and each verdict's rate with its Clopper–Pearson 95 % interval; the
    last line is the measured false-fail rate (or, for a layer outside the contract's pass
    region, the pass rate)."""
    if not records:
        raise CalibrationError("no seed sets to summarise")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in records:
        key = (record["spec"], record["adversary"], record.get("alpha_arg"))
        groups.setdefault(key, []).append(record)
    lines: list[str] = []
    for (spec, adversary, alpha_arg), group in groups.items():
        name = spec if alpha_arg is None else f"{spec} (alpha argument {alpha_arg})"
        lines += _summarize_group(name, adversary, group)
    return lines


def _summarize_group(spec: str, adversary: str, group: list[dict[str, Any]]) -> list[str]:
    import numpy as np
    from scipy.stats import binomtest

    contract = group[0]["contract"]
    if any(r["contract"] != contract for r in group):
        raise CalibrationError(f"the seed sets of {spec} were judged under different contracts")
    tau, delta = contract["tau"], contract["delta"]
    leak = np.array([x for r in group for x in r["leakage"]], dtype=float)
    control = np.array([x for r in group for x in r["control"]], dtype=float)
    other = np.array([x for r in group for x in r["reported_leakage"]], dtype=float)
    n_sets, n_seeds = len(group), leak.size

    def share(k: int, n: int) -> str:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        return f"{k}/{n} = {k / n:.2%} (95% CI {ci.low:.2%}–{ci.high:.2%})"

    def quantiles(x: np.ndarray) -> str:
        q = np.quantile(x, [0.5, 0.9, 0.95, 0.99])
        return (f"median {q[0]:+.3f}, 90% {q[1]:+.3f}, 95% {q[2]:+.3f}, 99% {q[3]:+.3f}, "
                f"max {x.max():+.3f} bits")

    judged, reported = group[0]["judged_probe"], group[0]["reported_probe"]
    first, last = min(r["set"] for r in group), max(r["set"] for r in group)
    verdicts = [r["verdict"] for r in group]
    quiet = int((leak <= tau).sum())
    loud = int(n_seeds - (leak < tau + delta).sum())
    lines = [
        f"{spec}, adversary {adversary}: {n_sets} seed sets ({first}–{last}), {n_seeds} seeds",
        f"  judged ({judged} probe, usable information over the permutation null): "
        f"{quantiles(leak)}",
        f"  seeds with leakage <= tau = {tau:g}: {share(quiet, n_seeds)}; >= tau + delta = "
        f"{tau + delta:g}: {share(loud, n_seeds)}",
        f"  control seeds with leakage >= tau + delta = {tau + delta:g}: "
        f"{share(int((control >= tau + delta).sum()), n_seeds)}",
        f"  reported, not judged ({reported} probe): {quantiles(other)}",
        "  verdicts: " + ", ".join(f"{v} {verdicts.count(v)}" for v in ("pass", "fail", "invalid")),
    ]
    lines.append(_rate_line(contract, leak, verdicts, share))
    return lines


def _rate_line(contract: dict[str, Any], leak: Any, verdicts: list[str],
               share: Callable[[int, int], str]) -> str:
    """The measured rate the contract speaks of, for where this layer is.

    The stated false-fail rate applies to a layer leaking > tau in at most rho of seeds (the
    pass region: shown when the interval of that fraction lies at or below rho); the stated
    false-pass rate to one leaking >= tau + delta in at least 1 - rho of seeds (the fail region,
    shown when that fraction's interval lies at or above 1 - rho). Between them the contract
    states no rate; when the intervals straddle a boundary, more sets are needed to tell.
    """
    from scipy.stats import binomtest

    tau, delta, rho = contract["tau"], contract["delta"], contract["robustness"]
    n_seeds, n_sets = len(leak), len(verdicts)
    above = int(n_seeds - (leak <= tau).sum())          # nan counts as leaking
    loud = int(n_seeds - (leak < tau + delta).sum())
    above_ci = binomtest(above, n_seeds).proportion_ci(method="exact")
    loud_ci = binomtest(loud, n_seeds).proportion_ci(method="exact")
    fails, passes = verdicts.count("fail"), verdicts.count("pass")
    if above_ci.high <= rho:
        return (f"false-fail rate: {share(fails, n_sets)} (Clopper–Pearson), "
                f"{_against(fails, n_sets, contract['false_fail_rate'])}")
    if loud_ci.low >= 1 - rho:
        return (f"false-pass rate: {share(passes, n_sets)} (Clopper–Pearson), "
                f"{_against(passes, n_sets, contract['false_pass_rate'])}")
    if above_ci.low > rho and loud_ci.high < 1 - rho:
        return (f"this layer leaks > tau in more than {rho:.0%} of seeds but >= tau + delta in "
                f"fewer than {1 - rho:.0%}: the contract states no rate here (see the power "
                f"curve); pass rate: {share(passes, n_sets)} (Clopper–Pearson)")
    return (f"fail rate: {share(fails, n_sets)} (Clopper–Pearson); which stated rate applies "
            f"cannot be told yet: {share(above, n_seeds)} of seeds leak > tau (the false-fail "
            f"rate needs <= {rho:.0%}); run more sets")


def _against(k: int, n: int, stated: float) -> str:
    """Whether ``k`` events in ``n`` sets agree with a stated rate ``<= stated``."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    if ci.low > stated:
        return f"NOT consistent with the stated <= {stated:g}"
    if ci.high <= stated:
        return f"within the stated <= {stated:g}"
    needed = math.ceil(math.log(0.025) / math.log(1 - stated))  # 0 events: upper end <= stated
    return (f"consistent with the stated <= {stated:g}, not yet shown (about {needed} sets "
            f"without one would show it)")


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
