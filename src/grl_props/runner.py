"""Run properties against a layer and collect results.

:func:`run_property` runs one property in this process: Hypothesis draws the examples with a
fixed seed (same seed, same examples, same verdict), shrinks a failure to a minimal
counterexample, and the result carries it. :func:`run_battery` runs many, each in a forked child
process with a time limit when the platform can fork, so a layer that hangs or crashes the
interpreter yields an ``error`` status instead of stopping the run.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import example as hypothesis_example
from hypothesis import seed as hypothesis_seed

from grl_props.adapters import LayerUnderTest
from grl_props.properties import Property, Skip, all_properties

__all__ = ["LayerReport", "PropertyResult", "RunOptions", "run_battery", "run_property"]

Status = Literal["pass", "fail", "error", "skip"]


@dataclass(frozen=True)
class RunOptions:
    """How properties run: examples per property, the seed, and the per-property time limit (s)."""

    max_examples: int = 100
    seed: int = 0
    timeout: float = 120.0
    isolate: bool = True

    def hypothesis_settings(self) -> settings:
        """A fixed profile: no example database, no deadline, no health checks."""
        return settings(
            max_examples=self.max_examples, deadline=None, database=None, derandomize=False,
            suppress_health_check=list(HealthCheck), verbosity=Verbosity.normal,
            report_multiple_bugs=False, print_blob=False,
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        )


@dataclass
class PropertyResult:
    """One property's verdict on one layer (the JSON contract's ``properties`` items)."""

    name: str
    tier: str
    status: Status
    detail: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "tier": self.tier, "status": self.status, "detail": self.detail}


@dataclass
class LayerReport:
    """All results for one spec; ``ok`` is whether every property of ``required`` tiers passed or skipped."""

    spec: str
    properties: list[PropertyResult] = field(default_factory=list)
    statistical: dict[str, Any] | None = None
    note: str = ""

    def ok(self, required: Sequence[str]) -> bool:
        return all(r.status in ("pass", "skip") for r in self.properties if r.tier in required)

    def to_json(self, required: Sequence[str]) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "ok": self.ok(required) and _statistical_ok(self.statistical),
            "properties": [r.to_json() for r in self.properties],
            "statistical": self.statistical,
        }


def _statistical_ok(statistical: dict[str, Any] | None) -> bool:
    return statistical is None or statistical.get("verdict") == "pass"


def run_property(layer: LayerUnderTest, prop: Property, options: RunOptions = RunOptions()) -> PropertyResult:
    """Run ``prop`` on ``layer`` in this process; never raises for what the layer does."""
    start = time.perf_counter()

    def result(status: Status, detail: str = "") -> PropertyResult:
        return PropertyResult(prop.name, prop.tier, status, detail, time.perf_counter() - start)

    reason = prop.skip_reason(layer)
    if reason is not None:
        return result("skip", reason)
    try:
        if prop.given:
            def example(**drawn: Any) -> None:
                prop.check(layer, **drawn)

            example.__name__ = example.__qualname__ = prop.name  # how the counterexample is titled
            test = given(**prop.given)(example)
            for explicit in reversed(prop.examples):
                test = hypothesis_example(**explicit)(test)
            test = hypothesis_seed(options.seed)(options.hypothesis_settings()(test))
            test()
        else:
            prop.check(layer)
    except Skip as exc:
        return result("skip", str(exc))
    except AssertionError as exc:
        return result("fail", _describe_failure(exc))
    except Exception as exc:  # the layer raised: an error, with the shrunk example
        return result("error", _describe_failure(exc, error=True))
    return result("pass")


def _describe_failure(exc: BaseException, *, error: bool = False) -> str:
    message = str(exc).strip() or type(exc).__name__
    if error:
        where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        location = f" (at {where[0].filename}:{where[0].lineno})" if where else ""
        message = f"the layer raised {type(exc).__name__}: {message}{location}"
    for note in getattr(exc, "__notes__", []):
        # Hypothesis titles the example "Falsifying example:", "Failing test case:" or, for an
        # explicit one, "Failing explicit example:" (wording varies across versions).
        head, _, example = note.partition(":")
        if head.startswith(("Falsifying", "Failing")):
            message += "\nCounterexample:" + example
    return message


def run_battery(layer: LayerUnderTest, *, options: RunOptions = RunOptions(),
                properties: Sequence[Property] | None = None,
                on_result: Callable[[PropertyResult, int, int], None] | None = None) -> LayerReport:
    """Run ``properties`` (default: all) on ``layer``; ``on_result(result, done, total)`` after each."""
    chosen = list(properties) if properties is not None else all_properties()
    report = LayerReport(layer.name, note=layer.note)
    isolate = options.isolate and _can_fork()
    if isolate:
        _warm_up(chosen)
    hung: list[str] = []
    for index, prop in enumerate(chosen, start=1):
        if len(hung) >= _MAX_HANGS:
            outcome = PropertyResult(prop.name, prop.tier, "error",
                                     f"not run: the layer already hung in {' and '.join(hung)}")
        elif isolate:
            outcome = _run_forked(layer, prop, options)
            if outcome.detail.startswith(_HANG):
                hung.append(prop.name)
        else:
            outcome = run_property(layer, prop, options)
        report.properties.append(outcome)
        if on_result is not None:
            on_result(outcome, index, len(chosen))
    return report


_WARMED: set[str] = set()
_HANG = "no result within"
#: After this many properties time out on one layer, the rest are not run (each would time out).
_MAX_HANGS = 2


def _warm_up(properties: Sequence[Property]) -> None:
    """Import what properties use and draw one example of each strategy here, so forked
    children inherit warm caches instead of each paying for them (the layer is never called)."""
    import torch._dynamo  # noqa: F401
    import torch.func  # noqa: F401
    import torch.testing  # noqa: F401

    for prop in properties:
        if prop.given and prop.name not in _WARMED:
            _WARMED.add(prop.name)
            warm = given(**prop.given)(lambda **drawn: None)
            settings(max_examples=1, database=None, deadline=None, phases=(Phase.generate,),
                     suppress_health_check=list(HealthCheck))(warm)()


def _can_fork() -> bool:
    return hasattr(os, "fork") and "fork" in multiprocessing.get_all_start_methods()


def _child(layer: LayerUnderTest, prop: Property, options: RunOptions, conn: Any) -> None:
    import torch

    torch.set_num_threads(1)
    try:
        outcome = run_property(layer, prop, options)
    except BaseException as exc:  # noqa: BLE001 - even SystemExit from a layer becomes a result
        outcome = PropertyResult(prop.name, prop.tier, "error", f"{type(exc).__name__}: {exc}")
    conn.send(asdict(outcome))
    conn.close()


def _run_forked(layer: LayerUnderTest, prop: Property, options: RunOptions) -> PropertyResult:
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    start = time.perf_counter()
    process = context.Process(target=_child, args=(layer, prop, options, send), daemon=True)
    process.start()
    send.close()
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
            f"the process running this property died (exit code {process.exitcode})",
            time.perf_counter() - start,
        )
    finally:
        receive.close()
        if process.is_alive():
            process.kill()
        process.join()
