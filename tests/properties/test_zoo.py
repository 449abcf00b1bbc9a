"""The battery bites: every broken zoo layer is caught for its own bug, every correct one passes core.

A catch counts only when its detail matches the entry's evidence (a regex naming the bug), and
``error`` (the layer raised) counts only for entries whose bug is that exception. The coverage
test closes the loop: each registered property must be declared as the catcher of at least one
zoo member, and the parametrized tests prove every declaration. Catchers that need CUDA are
proven where CUDA is; elsewhere the test asserts that they report ``skip (needs CUDA)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch
from zoo import (
    BROKEN,
    CORRECT,
    FIXED,
    Broken,
    Correct,
    Fixed,
    assert_names_its_evidence,
    caught_for_its_bug,
)

from grl_props.adapters import load_layer
from grl_props.properties import REQUIREMENTS, TIERS, Property, all_properties, get
from grl_props.runner import PropertyResult, RunOptions, run_property

OPTIONS = RunOptions(isolate=False)

#: Properties that need CUDA: on a machine without it they can only skip.
NEEDS_CUDA: frozenset[str] = frozenset(p.name for p in all_properties() if "cuda" in p.requires)

CORE = [p.name for p in all_properties(("core",))]


def _correct_cases() -> list[Any]:
    return [pytest.param(e, p, id=f"{e.name}-{p}") for e in CORRECT for p in CORE]


def _run(layer: object, name: str) -> PropertyResult:
    return run_property(load_layer(layer), get(name), OPTIONS)


def _broken_cases() -> list[Any]:
    return [pytest.param(e, p, id=f"{e.name}-{p}") for e in BROKEN for p in sorted(e.caught_by)]


@pytest.mark.parametrize(("entry", "prop"), _broken_cases())
def test_broken_layer_is_caught_for_its_bug(entry: Broken, prop: str) -> None:
    result = _run(entry.layer, prop)
    if prop in NEEDS_CUDA and not torch.cuda.is_available():
        assert (result.status, result.skip_kind) == ("skip", "needs_cuda"), result
        return
    problem = caught_for_its_bug(entry, prop, result)
    assert problem is None, f"{prop} on {entry.name}: {problem}"


@pytest.mark.parametrize("entry", BROKEN, ids=lambda e: e.name)
def test_every_broken_layer_names_its_evidence(entry: Broken) -> None:
    """No entry may count a catch for any reason: each catcher has a regex that needs a match."""
    assert_names_its_evidence(entry)


def test_evidence_rejects_a_catch_for_another_reason() -> None:
    """The check bites: a catch whose detail names another bug, or an error from a layer whose
    bug is no exception, is not counted."""
    by_name = {e.name: e for e in BROKEN}
    lost_sign, alpha_ignored = by_name["lost_sign"], by_name["alpha_ignored"]
    other = _run(alpha_ignored.layer, "vjp_is_negative_alpha_v")
    assert caught_for_its_bug(alpha_ignored, "vjp_is_negative_alpha_v", other) is None
    why = caught_for_its_bug(lost_sign, "vjp_is_negative_alpha_v", other)
    assert why is not None and why.startswith("caught for another reason")
    raised = PropertyResult("vjp_is_negative_alpha_v", "core", "error",
                            "the layer raised RuntimeError: boom")
    assert "is not an exception" in str(caught_for_its_bug(lost_sign, "vjp_is_negative_alpha_v",
                                                           raised))


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
    """A property that catches no broken layer has not shown it works (CUDA-only catchers show it
    only where CUDA is: ``test_broken_layer_is_caught_for_its_bug`` runs them there)."""
    declared = {name for e in BROKEN for name in e.caught_by}
    registered = {p.name for p in all_properties()}
    assert declared <= registered, f"unknown property names in the zoo: {declared - registered}"
    uncovered = registered - declared
    assert not uncovered, f"properties that catch no zoo member: {sorted(uncovered)}"
    assert NEEDS_CUDA == {"autocast_cuda", "runs_after_to_cuda"}
    assert set(REQUIREMENTS) >= {"cuda", "claims_torchscript", "claims_torch_export"}


# ---------------------------------------------------------------------------------------------
# Remedies: every property has one, and each is right: applied to a zoo layer the property
# catches, the layer passes it.


def remedy_problems(properties: Sequence[Property]) -> list[str]:
    """What is wrong with the remedies of ``properties``: missing, or not one sentence."""
    problems = []
    for prop in properties:
        remedy = prop.remedy.strip()
        if not remedy:
            problems.append(f"{prop.name} has no remedy")
        elif not remedy.endswith(".") or ". " in remedy or "\n" in remedy:
            problems.append(f"{prop.name}'s remedy is not one sentence: {remedy!r}")
    return problems


def test_every_registered_property_has_a_one_sentence_remedy() -> None:
    assert remedy_problems(all_properties(contract=None)) == []  # every contract's properties


def test_the_remedy_check_bites() -> None:
    def check(layer: object) -> None:
        pass

    missing = Property("no_remedy", "core", "a property without a remedy", check)
    two = Property("two", "core", "two sentences", check, remedy="Do this. Then that.")
    assert remedy_problems([missing, two, get("forward_identity")]) == [
        "no_remedy has no remedy", "two's remedy is not one sentence: 'Do this. Then that.'"]


@pytest.mark.parametrize("fixed", FIXED, ids=lambda f: f"{f.broken}-{f.prop}")
def test_the_remedy_applied_to_the_zoo_layer_fixes_it(fixed: Fixed) -> None:
    """The broken layer fails the property (proven above); with the remedy applied, it passes."""
    by_name = {e.name: e for e in BROKEN}
    assert fixed.prop in by_name[fixed.broken].caught_by, fixed
    result = _run(fixed.layer, fixed.prop)
    if fixed.prop in NEEDS_CUDA and not torch.cuda.is_available():
        assert (result.status, result.skip_kind) == ("skip", "needs_cuda"), result
        return
    assert result.status == "pass", (
        f"{fixed.broken} with the remedy of {fixed.prop} applied ({fixed.change}): "
        f"{result.status} {result.detail}\nremedy: {get(fixed.prop).remedy}")


def test_every_remedy_is_checked_on_a_zoo_layer() -> None:
    """Each registered property catches a zoo member (above), so each remedy can be checked."""
    checked = {f.prop for f in FIXED}
    assert checked == {p.name for p in all_properties()}, sorted(
        {p.name for p in all_properties()} - checked)
