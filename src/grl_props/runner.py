"""Run properties against a layer and collect results.

:func:`run_property` runs one property in this process: Hypothesis draws the examples with a
fixed seed (same seed, same examples, same verdict), shrinks a failure to a minimal
counterexample, and the result carries it and the number of examples that really ran.

:func:`run_battery` runs many, each in its own child process with a time limit, so a layer that
hangs or kills the interpreter (``os._exit``, a segfault) yields an ``error`` status instead of
stopping the run. Children are forked from a *fork server*: a fresh interpreter started once per
process, which imports torch, Hypothesis and the properties and never touches CUDA, so forking
from it is safe where CUDA lives (forking the caller, which may have initialised CUDA or OpenMP
threads, is not). The child loads the layer again by its name (the spec string, or
``module:qualname`` of a top-level class or function), so nothing of the caller's state is
inherited. A layer that cannot be named (an instance passed as an object, a class defined inside
a function or in ``__main__``) is run in a child forked from the caller instead, and the report
says so (:attr:`LayerReport.isolation`); where the caller cannot fork, or has initialised CUDA,
such a layer runs in this process, and the report says that too. No CUDA query happens in the
caller before a child starts.

Like every ``multiprocessing`` program that does not use plain fork, a script calling
:func:`run_battery` must keep its top-level code under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import re
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import example as hypothesis_example
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import FailedHealthCheck

from grl_props.adapters import LayerUnderTest, SpecError, load_layer
from grl_props.contracts import contract_reference
from grl_props.properties import SKIP_KINDS, TIERS, Property, Skip, SkipKind, all_properties, get

__all__ = ["PREFLIGHT", "CannotRun", "LayerReport", "PropertyResult", "RunOptions", "run_battery",
           "run_preflight", "run_property"]

Status = Literal["pass", "fail", "error", "skip"]

#: Health checks grl-props turns off, each for a reason; every other one stays on.
#: ``too_slow`` measures the wall time of data generation, so it fires or not with the machine's
#: load: the same seed must give the same verdict on a busy machine. What it guards against (a
#: run that silently tries few examples) is covered by counting the examples that really ran
#: (:attr:`PropertyResult.examples_run`). ``filter_too_much``, ``data_too_large`` and
#: ``large_base_example`` stay on: they protect the run, and when one fires the property gets
#: ``error`` naming grl-props' strategy, not the layer.
SUPPRESSED_HEALTH_CHECKS: tuple[HealthCheck, ...] = (HealthCheck.too_slow,)


@dataclass(frozen=True)
class RunOptions:
    """How properties run: examples per property, the seed, the per-property time limit (s) and
    whether each property runs in a child process."""

    max_examples: int = 100
    seed: int = 0
    timeout: float = 120.0
    isolate: bool = True

    def hypothesis_settings(self) -> settings:
        """The fixed settings every property runs with: ``max_examples``, no example database, no
        deadline, the health checks but :data:`SUPPRESSED_HEALTH_CHECKS`.

        Built on Hypothesis' own ``default`` profile, never on the profile the caller's process
        has loaded, so a user's profile does not change grl-props' verdicts (and grl-props loads
        none, so it does not change the user's tests).
        """
        return settings(
            settings.get_profile("default"),
            max_examples=self.max_examples, deadline=None, database=None, derandomize=False,
            suppress_health_check=SUPPRESSED_HEALTH_CHECKS, verbosity=Verbosity.normal,
            report_multiple_bugs=False, print_blob=False,
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        )


@dataclass
class PropertyResult:
    """One property's verdict on one layer (the JSON contract's ``properties`` items).

    ``skip_kind`` says why a skip checked nothing (:data:`~grl_props.properties.SKIP_KINDS`).
    ``examples_run`` counts the examples the check completed (explicit ones first, then drawn
    ones; for a failure, those before the first failing one); ``examples_asked`` is what was asked
    (``max_examples`` plus the explicit examples). Both are ``None`` for a check that runs once.
    ``pid`` is the process that ran the check, ``cpu_seconds`` the CPU time the check took there.
    ``remedy`` is the property's remedy (what to change in the layer; shown for failures), and
    ``warnings`` what torch or the layer printed or warned while the check ran in a child process
    (collected there, so that it never lands inside progress lines; shown once by the CLI).
    """

    name: str
    tier: str
    status: Status
    detail: str = ""
    seconds: float = 0.0
    skip_kind: SkipKind | None = None
    examples_run: int | None = None
    examples_asked: int | None = None
    pid: int | None = None
    cpu_seconds: float = 0.0
    remedy: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def ran_fewer_examples(self) -> bool:
        """Whether a passing check ran fewer examples than asked."""
        return (self.status == "pass" and self.examples_run is not None
                and self.examples_asked is not None and self.examples_run < self.examples_asked)

    def to_json(self) -> dict[str, Any]:
        examples = None
        if self.examples_asked is not None:
            examples = {"run": self.examples_run, "asked": self.examples_asked}
        remedy = self.remedy or None if self.status in ("fail", "error") else None
        return {"name": self.name, "tier": self.tier, "status": self.status, "detail": self.detail,
                "skip": self.skip_kind, "examples": examples, "remedy": remedy}


#: The counts of :meth:`LayerReport.summary`, per tier, in display order.
COUNTS = ("pass", "fail", "error", *(f"skip_{kind}" for kind in SKIP_KINDS))


@dataclass
class LayerReport:
    """All results for one spec; ``ok`` is whether every property of ``required`` tiers passed or
    skipped. ``isolation`` says how the properties ran (in child processes, or why not).
    ``cannot_run`` is the one sentence saying why no property could run (:data:`PREFLIGHT`
    failed; every property then carries it, with the same status), ``""`` otherwise.
    ``contract`` names the contract the layer was checked against."""

    spec: str
    properties: list[PropertyResult] = field(default_factory=list)
    statistical: dict[str, Any] | None = None
    note: str = ""
    isolation: str = "in-process"
    cannot_run: str = ""
    contract: str = "reverse"

    def ok(self, required: Sequence[str]) -> bool:
        return all(r.status in ("pass", "skip") for r in self.properties if r.tier in required)

    def summary(self) -> dict[str, dict[str, int]]:
        """Per tier that ran: how many properties passed, failed, errored, and skipped for each
        reason (``skip_not_claimed``, ``skip_needs_cuda``, ``skip_not_applicable``)."""
        counts: dict[str, dict[str, int]] = {}
        for tier in TIERS:
            results = [r for r in self.properties if r.tier == tier]
            if results:
                counts[tier] = {key: sum(_count_key(r) == key for r in results) for key in COUNTS}
        return counts

    def to_json(self, required: Sequence[str]) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "contract": self.contract,
            "ok": self.ok(required) and _statistical_ok(self.statistical),
            "isolation": self.isolation,
            "summary": self.summary(),
            "properties": [r.to_json() for r in self.properties],
            "statistical": self.statistical,
        }


def _count_key(result: PropertyResult) -> str:
    return f"skip_{result.skip_kind or 'not_applicable'}" if result.status == "skip" else result.status


def _statistical_ok(statistical: dict[str, Any] | None) -> bool:
    return statistical is None or statistical.get("verdict") == "pass"


def run_property(layer: LayerUnderTest, prop: Property, options: RunOptions = RunOptions()) -> PropertyResult:
    """Run ``prop`` on ``layer`` in this process; never raises for what the layer does.

    When a fixed explicit example fails (they run first), the generated examples are run and
    shrunk anyway: the smallest failing one is reported, and the fixed case follows as "Also fails
    on the fixed case ...". Only when no generated example fails is the fixed case shown alone.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    completed = [0]  # examples the check completed, until the first failing one
    failed = [False]
    first_failing: list[Mapping[str, Any]] = []  # the arguments of the first failing example
    also = [""]  # the fixed case, when a smaller generated one is reported instead
    asked = options.max_examples + len(prop.examples) if prop.given else None
    stopped: list[str] = []

    def result(status: Status, detail: str = "", kind: SkipKind | None = None) -> PropertyResult:
        run = completed[0] if prop.given else None
        if status == "pass" and asked is not None and run is not None and run < asked:
            why = f" (Hypothesis stopped: {stopped[-1]})" if stopped else ""
            detail = f"ran {run} of {asked} examples asked{why}"
        if status in ("fail", "error"):
            detail += also[0]
        return PropertyResult(prop.name, prop.tier, status, detail, time.perf_counter() - start,
                              kind, run, asked if status != "skip" else None, os.getpid(),
                              time.process_time() - cpu_start, prop.remedy_for(layer.contract))

    skip = prop.skip_reason(layer)
    if skip is not None:
        return result("skip", *skip)
    try:
        if prop.given:
            def example(**drawn: Any) -> None:
                try:
                    prop.check(layer, **drawn)
                except BaseException:
                    if not failed[0]:
                        first_failing.append(drawn)
                    failed[0] = True
                    raise
                if not failed[0]:
                    completed[0] += 1

            example.__name__ = example.__qualname__ = prop.name  # how the counterexample is titled
            test = given(**prop.given)(example)
            for explicit in reversed(prop.examples):
                test = hypothesis_example(**explicit)(test)
            test = hypothesis_seed(options.seed)(options.hypothesis_settings()(test))
            try:
                with _StopReason(stopped):
                    test()
            except (Skip, FailedHealthCheck):
                raise
            except Exception as exc:
                fixed = _fixed_example(exc, first_failing, prop)
                if fixed is None:
                    raise
                smaller = _generated_failure(layer, prop, options)
                if smaller is None or isinstance(smaller, AssertionError) != isinstance(exc, AssertionError):
                    also[0] = (f"\n(No generated example failed in {options.max_examples} tried, so "
                               "this fixed case is the smallest failure known.)")
                    raise
                also[0] = _also_fails(exc, fixed)
                raise smaller from None
        else:
            prop.check(layer)
    except Skip as exc:
        return result("skip", str(exc), exc.kind)
    except CannotRun as exc:
        return result(exc.status, str(exc))
    except FailedHealthCheck as exc:  # grl-props' own strategy, not the layer
        return result("error", f"grl-props' strategy for {prop.name} failed a Hypothesis health "
                               f"check (a bug of grl-props, not of the layer): {exc}")
    except AssertionError as exc:
        return result("fail", _describe_failure(exc))
    except Exception as exc:  # the layer raised: an error, with the shrunk example
        return result("error", _describe_failure(exc, error=True))
    return result("pass")


class CannotRun(Exception):
    """Raised by :data:`PREFLIGHT` with one sentence: the layer cannot run at all. ``status`` is
    ``error`` when it raised, ``fail`` when it ran but returned something no reversal returns."""

    def __init__(self, sentence: str, status: Status) -> None:
        super().__init__(sentence)
        self.status: Status = status


#: The input of grl-props' first call of a layer: plain float32 values, as a model would pass.
_PLAIN = ((1.5, -2.0, 0.25), (3.0, -0.5, 1.0))


def _can_run(layer: LayerUnderTest) -> None:
    """grl-props' first call of a layer, before any property: build it with its default alpha,
    call it on a plain float32 tensor of shape (2, 3) that requires grad, require a tensor of the
    same shape, dtype, device and (to rounding) values, and run backward through it.

    Raises :class:`CannotRun` with one sentence saying what went wrong and where it came from.
    """
    import torch

    from grl_props.compare import require_tensor, value_line

    try:
        fn = layer.build()
    except Exception as exc:
        takes_alpha = layer.contract.takes_alpha
        qualname = getattr(layer.obj, '__qualname__', layer.name)
        if layer.kind == "module_class":
            call = (f"{qualname}({layer.alpha_arg}={layer.default_alpha!r})" if takes_alpha
                    else f"{qualname}()")
        else:
            call = f"{layer.name} with alpha {layer.default_alpha!r}" if takes_alpha else layer.name
        hint = (" (name the argument that holds alpha with --alpha-arg, or alpha_arg= in "
                "conformance_suite)" if layer.kind == "module_class" and takes_alpha else "")
        raise CannotRun(f"{layer.name} is not a {layer.contract.noun} that grl-props can build: "
                        f"{call} raised {_one_line(exc)}{_origin(exc, skip_own=True)}{hint}",
                        "error") from None
    x = torch.tensor(_PLAIN, requires_grad=True)
    what = "called on a float32 tensor of shape (2, 3)"
    try:
        out = fn(x)
    except Exception as exc:
        raise CannotRun(f"the layer cannot run: {what}, it raised {_one_line(exc)}{_origin(exc)}",
                        "error") from None
    try:
        require_tensor(out, "its output", like=x)
    except AssertionError as exc:
        raise CannotRun(f"the layer cannot run as a {layer.contract.noun}: {what}, {exc}",
                        "fail") from None
    contract = layer.contract
    expected = contract.expected_forward(torch.tensor(_PLAIN))
    mismatched = ~torch.isclose(out.detach(), expected, rtol=1e-3, atol=1e-3)
    if bool(mismatched.any()):
        raise CannotRun(f"the layer is not a {contract.noun}: its forward is not "
                        f"{contract.forward_text}: "
                        f"{value_line(out, expected, mismatched=mismatched)}", "fail")
    if out.requires_grad:  # a detached output is for the properties to report
        try:
            out.backward(torch.ones_like(out))
        except Exception as exc:
            raise CannotRun(f"the layer cannot run: {what}, its backward raised "
                            f"{_one_line(exc)}{_origin(exc)}", "error") from None


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


#: The check grl-props runs once per layer before its properties (:func:`run_battery`,
#: :func:`run_preflight`): when it does not pass, no property runs, and every one gets its status
#: and its one sentence. Not registered: it is no property of a reversal, only a precondition.
PREFLIGHT = Property("can_run", "core", "the layer can be built and called forward and backward on "
                     "a plain float32 tensor, and returns a tensor like its input", _can_run)


def run_preflight(layer: LayerUnderTest, options: RunOptions = RunOptions()) -> PropertyResult | None:
    """Run :data:`PREFLIGHT` on ``layer`` in this process: ``None`` when the layer can run, else
    its result (status ``error`` or ``fail``, the detail one sentence)."""
    result = run_property(layer, PREFLIGHT, options)
    return None if result.status == "pass" else result


class _StopReason:
    """Collect Hypothesis' reason for stopping (its statistics format is not a stable API: a
    missing or changed key only loses the reason, never the count)."""

    def __init__(self, into: list[str]) -> None:
        self.into = into
        self.context: Any = None

    def _note(self, stats: Any) -> None:
        reason = stats.get("stopped-because") if isinstance(stats, dict) else None
        if isinstance(reason, str):
            self.into.append(reason)

    def __enter__(self) -> None:
        try:
            from hypothesis.statistics import collector

            self.context = collector.with_value(self._note)  # type: ignore[arg-type]
            self.context.__enter__()
        except Exception:  # pragma: no cover - only the reason is lost
            self.context = None

    def __exit__(self, *exc: Any) -> None:
        if self.context is not None:
            self.context.__exit__(*exc)


def _fixed_example(exc: BaseException, first_failing: list[Mapping[str, Any]], prop: Property
                   ) -> Mapping[str, Any] | None:
    """The explicit example of ``prop`` that failed first, or ``None`` when a drawn one did."""
    if not (first_failing and prop.examples):
        return None
    drawn = first_failing[0]
    for explicit in prop.examples:
        if explicit.keys() == drawn.keys() and all(drawn[k] is v for k, v in explicit.items()):
            return explicit
    return None


def _generated_failure(layer: LayerUnderTest, prop: Property, options: RunOptions
                       ) -> BaseException | None:
    """Run only the generated examples of ``prop`` (same seed), shrinking a failure; return the
    exception of the smallest failing example, or ``None`` when none fails."""

    def example(**drawn: Any) -> None:
        prop.check(layer, **drawn)

    example.__name__ = example.__qualname__ = prop.name
    phases = (Phase.generate, Phase.shrink)
    test = given(**prop.given)(example)
    test = hypothesis_seed(options.seed)(settings(options.hypothesis_settings(), phases=phases)(test))
    try:
        test()
    except (Skip, FailedHealthCheck):
        return None
    except Exception as exc:
        return exc
    return None


#: The lines of torch.testing's mismatch statistics, left out where the fixed case is summed up.
_STATISTICS = ("Tensor-likes are not", "Scalars are not", "Mismatched elements", "Greatest absolute",
               "Greatest relative", "Expected ", "Absolute difference", "Relative difference")


def _also_fails(exc: BaseException, fixed: Mapping[str, Any]) -> str:
    """The fixed case that failed, in a few lines: what it was and what went wrong, without
    torch's statistics or its (long) values."""
    error = not isinstance(exc, AssertionError)
    message = _describe_failure(exc, error=error, counterexample=False)
    lines = [line for line in message.splitlines() if line.strip() and not line.startswith(_STATISTICS)]
    case = ", ".join(f"{name}: {_brief(value)}" for name, value in fixed.items())
    return f"\nAlso fails on the fixed case ({case}):\n" + "\n".join("  " + line for line in lines)


def _brief(value: Any) -> str:
    """A fixed example's argument in a few words (its full repr holds every value)."""
    from grl_props.strategies import TensorCase, VJPCase

    def tensor(case: TensorCase) -> str:
        return f"shape {case.shape} {str(case.dtype).removeprefix('torch.')} {case.layout}"

    if isinstance(value, VJPCase):
        return f"x and v of {tensor(value.x)}, alpha={value.alpha!r}"
    if isinstance(value, TensorCase):
        return tensor(value)
    return repr(value)


#: Where a traceback frame is grl-props', torch's or Hypothesis' own, not the layer's.
_OWN_CODE = re.compile(r"[\\/](grl_props|torch|hypothesis|_pytest|pluggy)[\\/]")


def _origin(exc: BaseException, *, skip_own: bool = False) -> str:
    """Where ``exc`` came from: the deepest frame in the layer's code (not grl-props', torch's or
    Hypothesis'), else the deepest frame (``skip_own``: else nothing): `` (at path:line, in f)``."""
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    theirs = [f for f in frames if not _OWN_CODE.search(f.filename)]
    chosen = theirs or ([] if skip_own else frames)
    if not chosen:
        return ""
    frame = chosen[-1]
    return f" (at {frame.filename}:{frame.lineno}, in {frame.name})"


def _describe_failure(exc: BaseException, *, error: bool = False, counterexample: bool = True) -> str:
    message = str(exc).strip() or type(exc).__name__
    if error:
        message = f"the layer raised {type(exc).__name__}: {message}{_origin(exc)}"
    if not counterexample:
        return message
    for note in getattr(exc, "__notes__", []):
        # Hypothesis titles the example "Falsifying example:", "Failing test case:" or, for an
        # explicit one, "Failing explicit example:" (wording varies across versions).
        head, _, example = note.partition(":")
        if head.startswith(("Falsifying", "Failing")):
            message += "\nCounterexample:" + example
    return message


# ---------------------------------------------------------------------------------------------
# Running many properties, each in a child process


def run_battery(layer: LayerUnderTest, *, options: RunOptions = RunOptions(),
                properties: Sequence[Property] | None = None,
                on_result: Callable[[PropertyResult, int, int], None] | None = None) -> LayerReport:
    """Run ``properties`` (default: all) on ``layer``; ``on_result(result, done, total)`` after each.

    With ``options.isolate`` (the default) each property runs in a child process with
    ``options.timeout`` seconds (see the module docstring); after two time-outs the layer's
    remaining properties are marked ``error`` without running.
    """
    chosen = list(properties) if properties is not None else all_properties(contract=layer.contract)
    report = LayerReport(layer.name, note=layer.note, contract=layer.contract.name)
    plan = _plan(layer, chosen) if options.isolate and chosen else _Plan("in-process", None)
    report.isolation = plan.description
    if plan.note:
        report.note = "; ".join(n for n in (report.note, plan.note) if n)
    first = _run_one(layer, PREFLIGHT, plan, options) if chosen else None
    if first is not None and first.status != "pass":
        # The layer cannot run: one sentence, the same status for every property, none run.
        status: Status = first.status if first.status in ("fail", "error") else "error"
        sentence = first.detail
        call = "grl-props' first call of it (forward and backward on a float32 tensor of shape (2, 3))"
        if sentence.startswith(_HANG):
            sentence = f"the layer hangs: {call} gave no result within {options.timeout:g} s"
        elif sentence.startswith(_DIED):
            sentence = f"the layer cannot run: the process making {call} died{sentence[len(_DIED):]}"
        elif not sentence.startswith(("the layer", layer.name)):
            sentence = f"the layer cannot run: {sentence}"
        report.cannot_run = sentence
        for index, prop in enumerate(chosen, start=1):
            outcome = PropertyResult(prop.name, prop.tier, status, f"not run: {sentence}",
                                     warnings=first.warnings if index == 1 else [])
            report.properties.append(outcome)
            if on_result is not None:
                on_result(outcome, index, len(chosen))
        return report
    hung: list[str] = []
    for index, prop in enumerate(chosen, start=1):
        if len(hung) >= _MAX_HANGS:
            outcome = PropertyResult(prop.name, prop.tier, "error",
                                     f"not run: the layer already hung in {' and '.join(hung)}")
        else:
            outcome = _run_one(layer, prop, plan, options)
        if outcome.detail.startswith(_HANG):
            hung.append(prop.name)
        report.properties.append(outcome)
        if on_result is not None:
            on_result(outcome, index, len(chosen))
    return report


def _run_one(layer: LayerUnderTest, prop: Property, plan: _Plan, options: RunOptions
             ) -> PropertyResult:
    """Run one property as ``plan`` says: in a child of the fork server, a fork, or here."""
    if plan.method in ("forkserver", "spawn"):
        assert plan.names is not None
        task = _Task(plan.names, layer.alpha_arg, tuple(sorted(layer.claims)),
                     str(_contract_name(layer)),
                     prop.name, prop.tier, prop.check.__module__, options, dict(os.environ))
        return _run_in_child(plan.method, _child_by_name, (task,), prop, options)
    if plan.method == "fork":
        return _run_in_child("fork", _child_with_objects, (layer, prop, options), prop, options)
    collected: list[str] = []
    with _collected_output(collected):
        outcome = run_property(layer, prop, options)
    outcome.warnings = collected
    return outcome


_HANG = "no result within"
_DIED = "the process running this property died"
#: After this many properties time out on one layer, the rest are not run (each would time out).
_MAX_HANGS = 2

#: What the fork server imports once, so that each child starts warm (no module here queries CUDA).
_PRELOAD = ["torch", "torch.func", "torch._dynamo", "torch.testing", "hypothesis",
            "hypothesis.extra.numpy", "grl_props", "grl_props.runner", "grl_props.properties._warm",
            *(f"grl_props.properties.{family}" for family in ("forward", "backward", "hygiene",
                                                              "compat"))]


@dataclass(frozen=True)
class _Plan:
    method: str  # "forkserver", "spawn", "fork" or "in-process"
    names: tuple[str, ...] | None
    note: str = ""

    @property
    def description(self) -> str:
        if self.method in ("forkserver", "spawn"):
            return f"child process per property ({self.method}; the layer loaded by name)"
        if self.method == "fork":
            return "child process per property (fork of this process: " + self.note + ")"
        return "none: " + self.note if self.note else "in-process"


@dataclass(frozen=True)
class _Task:
    """What a child needs to load the layer and the property by name (picklable)."""

    names: tuple[str, ...]  # specs naming the layer, tried in order
    alpha_arg: str | None
    claims: tuple[str, ...]
    contract: str  # what resolve_contract turns back into the layer's contract
    prop_name: str
    prop_tier: str
    prop_module: str
    options: RunOptions
    environ: dict[str, str]


def _plan(layer: LayerUnderTest, properties: Sequence[Property]) -> _Plan:
    """How to isolate: a fresh child that loads the layer by name where possible, else fork."""
    names, why = _names(layer)
    unnamed = [p.name for p in properties if not _named_property(p)]
    if names and unnamed:
        names, why = None, f"properties {', '.join(unnamed)} are not registered by name"
    if names and _contract_name(layer) is None:
        names, why = None, (f"the contract {layer.contract.name} has no importable name (bind it "
                            "to a module-level name in the module defining its forward map)")
    if names:
        methods = multiprocessing.get_all_start_methods()
        return _Plan("forkserver" if "forkserver" in methods else "spawn", names)
    if "fork" not in multiprocessing.get_all_start_methods():
        return _Plan("in-process", None, f"not isolated: {why}, and this platform cannot fork")
    if _cuda_initialized():
        return _Plan("in-process", None, f"not isolated: {why}, and this process has initialised "
                                         "CUDA, which a forked child cannot use")
    return _Plan("fork", None, f"{why}; unsafe if this process initialises CUDA later")


def _contract_name(layer: LayerUnderTest) -> str | None:
    """How a child loads the layer's contract: the name or spec it was given by, else its
    module-level name (:func:`contract_reference`); ``None`` when it has neither. (A child
    started by forkserver or spawn gets this process's ``sys.path``.)"""
    return layer.contract_spec or contract_reference(layer.contract)


def _cuda_initialized() -> bool:
    """Whether this process has initialised CUDA (a flag: this asks the driver nothing)."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


def _names(layer: LayerUnderTest) -> tuple[tuple[str, ...] | None, str]:
    """Spec strings a fresh process can load ``layer`` from, or ``None`` and why not."""
    if layer.spec is not None:
        return (layer.spec,), ""
    obj = None if layer.kind == "module_instance" else layer.obj
    if obj is None or not hasattr(obj, "__qualname__"):
        return None, f"the layer {layer.name} is an object with no importable name"
    module, qualname = getattr(obj, "__module__", None), obj.__qualname__
    if not module or module == "__main__" or "<locals>" in qualname:
        where = "in __main__" if module == "__main__" else "inside a function"
        return None, f"the layer {layer.name} is defined {where}, so no other process can import it"
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if found is not obj:
        return None, f"{module}:{qualname} does not name the layer {layer.name}"
    names = [f"{module}:{qualname}"]
    path = getattr(sys.modules[module], "__file__", None)
    if path and path.endswith(".py"):
        names.append(f"{path}:{qualname}")  # when the module is importable only where it was
    return tuple(names), ""


def _named_property(prop: Property) -> bool:
    try:
        return get(prop.name) is prop
    except KeyError:
        return False


def _context(method: str) -> Any:
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(_PRELOAD)  # no effect once the server runs
    return context


def _run_in_child(method: str, target: Callable[..., None], args: tuple[Any, ...], prop: Property,
                  options: RunOptions) -> PropertyResult:
    """Run ``target(*args, conn)`` in a child; its result, or ``error`` on time-out or death."""
    context = _context(method)
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, send), daemon=True)
    process.start()  # with forkserver, the first start waits for the server's imports
    send.close()
    start = time.perf_counter()  # the limit counts from the child's start
    try:
        if receive.poll(options.timeout):
            try:
                return PropertyResult(**receive.recv())
            except EOFError:
                pass  # the child died before sending
        elif process.is_alive():
            process.kill()
            process.join()
            return PropertyResult(
                prop.name, prop.tier, "error",
                f"{_HANG} {options.timeout:g} s: the layer hangs or is far too slow",
                time.perf_counter() - start,
            )
        process.join()
        return PropertyResult(
            prop.name, prop.tier, "error",
            f"{_DIED} (exit code {process.exitcode})",
            time.perf_counter() - start, pid=process.pid,
        )
    finally:
        receive.close()
        if process.is_alive():
            process.kill()
        process.join()


def _child_by_name(task: _Task, conn: Any) -> None:
    """In a fresh child: load the layer and the property by name, run it, send the result."""
    os.environ.clear()
    os.environ.update(task.environ)
    layer, errors = None, []
    for name in task.names:
        try:
            layer = load_layer(name, alpha_arg=task.alpha_arg, claims=task.claims,
                               contract=task.contract)
            break
        except SpecError as exc:
            errors.append(str(exc))
    if layer is None:
        _send(conn, PropertyResult(task.prop_name, task.prop_tier, "error",
                                   "the child process could not load the layer by name: "
                                   + "; ".join(errors), pid=os.getpid()))
        return
    try:
        if task.prop_module not in sys.modules:
            importlib.import_module(task.prop_module)
        prop = PREFLIGHT if task.prop_name == PREFLIGHT.name else get(task.prop_name)
    except Exception as exc:  # noqa: BLE001 - reported as the property's result
        _send(conn, PropertyResult(task.prop_name, task.prop_tier, "error",
                                   f"the child process could not load the property: "
                                   f"{type(exc).__name__}: {exc}", pid=os.getpid()))
        return
    _child_with_objects(layer, prop, task.options, conn)


def _child_with_objects(layer: LayerUnderTest, prop: Property, options: RunOptions, conn: Any) -> None:
    import torch

    torch.set_num_threads(1)
    collected: list[str] = []
    try:
        with _collected_output(collected):
            outcome = run_property(layer, prop, options)
    except BaseException as exc:  # noqa: BLE001 - even SystemExit from a layer becomes a result
        outcome = PropertyResult(prop.name, prop.tier, "error", f"{type(exc).__name__}: {exc}",
                                 pid=os.getpid())
    outcome.warnings = collected
    _send(conn, outcome)


#: The start of one message on stderr, with what makes two copies differ (time, process id)
#: dropped: torch's C++ warnings ``[W1129 03:40:16.436401762 BatchedFallback.cpp:82] `` and its
#: Python logging ``W1129 03:56:47.825000 23654 torch/fx/symbolic_shapes.py:8866] ``.
_MESSAGE_START = re.compile(r"^(?:\[[WEI]\d+ [\d:.]+ ([^\]]+)\] |[WEI]\d{4} [\d:.]+ \d+ ([^\]]+)\] )")
#: At most this many lines of one message are kept (torch.export dumps whole graphs).
_MESSAGE_LINES = 6


def _messages(text: str) -> list[str]:
    """``text`` written to stderr, cut into messages (each starts at a torch warning or log line;
    lines in between belong to the message above), each at most :data:`_MESSAGE_LINES` lines."""
    messages: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        start = _MESSAGE_START.match(line)
        if start or not messages:
            where = (start.group(1) or start.group(2)) if start else None
            messages.append([f"[{where}] {line[start.end():]}" if start else line.rstrip()])
        else:
            messages[-1].append(line.rstrip())
    kept = []
    for lines in messages:
        more = len(lines) - _MESSAGE_LINES
        kept.append("\n".join(lines[:_MESSAGE_LINES] + ([f"... ({more} more lines)"] if more > 0 else [])))
    return kept


@contextlib.contextmanager
def _collected_output(into: list[str]) -> Iterator[None]:
    """Collect what is written to file descriptor 2 (torch's C++ warnings and log lines, a
    layer's prints to stderr) and Python warnings while the block runs, as messages appended to
    ``into``, instead of letting them land inside the caller's progress lines."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect: collect Python warnings only
        saved = None
    with tempfile.TemporaryFile() as sink, warnings.catch_warnings(record=True) as caught:
        if saved is not None:
            os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            if saved is not None:
                os.dup2(saved, 2)
                os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace")
            for item in caught:
                into.append(f"{item.category.__name__}: {item.message} "
                            f"({item.filename}:{item.lineno})")
            into.extend(_messages(text))


def _send(conn: Any, outcome: PropertyResult) -> None:
    conn.send(asdict(outcome))
    conn.close()
