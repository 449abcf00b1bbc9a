"""The battery bites: every broken zoo layer is caught, every correct one passes core.

The coverage test closes the loop: each registered property (core, hygiene and compat alike,
none of which can only skip on CPU) must be declared as the catcher of at least one zoo member,
and the parametrized tests prove every declaration.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from zoo import BROKEN, CORRECT, Broken, Correct

from grl_props.adapters import load_layer
from grl_props.properties import TIERS, all_properties, get
from grl_props.runner import PropertyResult, RunOptions, run_property

OPTIONS = RunOptions(isolate=False)

#: Compat properties that can only skip on a CPU-only machine (none: opcheck, torchscript and
#: torch_export all run on CPU for a layer that uses a custom op or claims the support).
CPU_SKIP_ONLY: frozenset[str] = frozenset()

CORE = [p.name for p in all_properties(("core",))]

def _correct_cases() -> list[Any]:
    return [pytest.param(e, p, id=f"{e.name}-{p}") for e in CORRECT for p in CORE]


def _run(layer: object, name: str) -> PropertyResult:
    return run_property(load_layer(layer), get(name), OPTIONS)


def _broken_cases() -> list[Any]:
    return [pytest.param(e, p, id=f"{e.name}-{p}") for e in BROKEN for p in sorted(e.caught_by)]


@pytest.mark.parametrize(("entry", "prop"), _broken_cases())
def test_broken_layer_is_caught(entry: Broken, prop: str) -> None:
    result = _run(entry.layer, prop)
    assert result.status in ("fail", "error"), (
        f"{prop} did not catch {entry.name} ({entry.bug}): status {result.status} {result.detail}"
    )
    assert re.search(entry.evidence, result.detail), (
        f"{prop} caught {entry.name} for another reason than {entry.bug!r} "
        f"(no match for {entry.evidence!r}): {result.detail}"
    )


@pytest.mark.parametrize("entry", BROKEN, ids=lambda e: e.name)
def test_broken_layer_declares_its_tier(entry: Broken) -> None:
    """Each bug is claimed by at least one property of the tier it belongs to."""
    assert entry.tier in TIERS
    tiers = {get(name).tier for name in entry.caught_by}
    assert entry.tier in tiers, f"{entry.name} is a {entry.tier} bug but only {tiers} catch it"


@pytest.mark.parametrize(("entry", "prop"), _correct_cases())
def test_correct_layer_passes_core(entry: Correct, prop: str) -> None:
    result = _run(entry.layer, prop)
    assert result.status == "pass", (
        f"{entry.name} ({entry.style}) {prop}: {result.status} {result.detail}"
    )


def test_zoo_is_big_enough_and_names_are_unique() -> None:
    names = [e.name for e in BROKEN] + [c.name for c in CORRECT]
    assert len(BROKEN) >= 20 and len(CORRECT) >= 4
    assert len(set(names)) == len(names)
    assert len({c.style for c in CORRECT}) == len(CORRECT)


def test_every_property_catches_a_zoo_member() -> None:
    """A property that catches no broken layer has not shown it works."""
    declared = {name for e in BROKEN for name in e.caught_by}
    registered = {p.name for p in all_properties()}
    assert declared <= registered, f"unknown property names in the zoo: {declared - registered}"
    uncovered = registered - CPU_SKIP_ONLY - declared
    assert not uncovered, f"properties that catch no zoo member: {sorted(uncovered)}"
