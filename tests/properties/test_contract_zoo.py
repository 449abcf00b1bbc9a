"""The battery bites under every built-in contract besides ``reverse`` (``scale``, ``stop``,
``ste-round``, ``ste-sign``): each broken member of ``contract_zoo`` is caught for its own bug,
each correct one passes its contract's core properties.

As in ``test_zoo.py``: a catch counts only when its detail matches the entry's evidence (a regex
naming the bug), and ``error`` (the layer raised) only for entries whose bug is that exception.
The coverage test closes the loop per contract: every property that applies to the contract
(``all_properties(contract=...)``) must be declared as the catcher of at least one broken member
of that contract, and the parametrized test proves each declaration. Catchers that need CUDA are
proven where CUDA is; elsewhere the test asserts that they report ``skip (needs CUDA)``.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch
from contract_zoo import BROKEN, CONTRACT_NAMES, CORRECT, Broken, Correct
from zoo import assert_names_its_evidence, caught_for_its_bug

from grl_props.adapters import load_layer
from grl_props.contracts import CONTRACTS
from grl_props.properties import TIERS, all_properties, get
from grl_props.runner import PropertyResult, RunOptions, run_property

OPTIONS = RunOptions(isolate=False)

#: Properties that need CUDA: on a machine without it they can only skip.
NEEDS_CUDA: frozenset[str] = frozenset(
    p.name for p in all_properties(contract=None) if "cuda" in p.requires)

def _run(layer: object, contract: str, name: str) -> PropertyResult:
    return run_property(load_layer(layer, contract=contract), get(name), OPTIONS)


def _core(contract: str) -> list[str]:
    return [p.name for p in all_properties(("core",), contract=CONTRACTS[contract])]


def _applicable(contract: str) -> set[str]:
    return {p.name for p in all_properties(contract=CONTRACTS[contract])}


def _broken_cases() -> list[Any]:
    cases = []
    for contract in CONTRACT_NAMES:
        for entry in BROKEN[contract]:
            for prop in sorted(entry.caught_by):
                cases.append(pytest.param(contract, entry, prop,
                                          id=f"{contract}-{entry.name}-{prop}"))
    return cases


def _correct_cases() -> list[Any]:
    return [pytest.param(contract, entry, prop, id=f"{contract}-{entry.name}-{prop}")
            for contract in CONTRACT_NAMES for entry in CORRECT[contract]
            for prop in _core(contract)]


@pytest.mark.parametrize(("contract", "entry", "prop"), _broken_cases())
def test_broken_layer_is_caught_for_its_bug(contract: str, entry: Broken, prop: str) -> None:
    result = _run(entry.layer, contract, prop)
    if prop in NEEDS_CUDA and not torch.cuda.is_available():
        assert (result.status, result.skip_kind) == ("skip", "needs_cuda"), result
        return
    problem = caught_for_its_bug(entry, prop, result)
    assert problem is None, f"{prop} on {entry.name} ({contract}): {problem}"


@pytest.mark.parametrize(("contract", "entry", "prop"), _correct_cases())
def test_correct_layer_passes_core(contract: str, entry: Correct, prop: str) -> None:
    result = _run(entry.layer, contract, prop)
    assert result.status == "pass", (
        f"{entry.name} ({entry.style}, {contract}) {prop}: {result.status} {result.detail}")


@pytest.mark.parametrize("contract", CONTRACT_NAMES)
def test_every_applicable_property_catches_a_member(contract: str) -> None:
    """Each property of the contract's battery is declared as the catcher of a broken member of
    that contract (and ``test_broken_layer_is_caught_for_its_bug`` proves each declaration);
    no member is declared as caught by a property that does not apply to its contract."""
    declared = {name for entry in BROKEN[contract] for name in entry.caught_by}
    applicable = _applicable(contract)
    assert declared <= applicable, (
        f"{contract}: declared catchers that do not apply: {sorted(declared - applicable)}")
    uncovered = applicable - declared
    assert not uncovered, f"{contract}: properties that catch no broken member: {sorted(uncovered)}"


def test_the_batteries_differ_as_the_contracts_do() -> None:
    """Sanity of the coverage test's input: each battery holds the traits' properties."""
    assert NEEDS_CUDA == {"autocast_cuda", "runs_after_to_cuda"}
    alpha_only = {"vjp_linear_in_alpha", "zero_alpha_gives_zero_gradient", "alpha_in_state_dict",
                  "alpha_frozen_at_forward", "instances_independent"}
    assert alpha_only <= _applicable("scale")
    for contract in ("stop", "ste-round", "ste-sign"):
        assert not alpha_only & _applicable(contract), contract
    assert "double_backward" not in _applicable("stop")
    assert "no_saved_activations" not in _applicable("ste-sign")
    assert {"forward_identity"} <= _applicable("scale") & _applicable("stop")
    assert {"forward_matches_contract"} <= _applicable("ste-round") & _applicable("ste-sign")
    for contract in CONTRACT_NAMES:
        assert "vjp_matches_contract" in _applicable(contract)
        assert "vjp_is_negative_alpha_v" not in _applicable(contract)


@pytest.mark.parametrize("entry", [e for c in CONTRACT_NAMES for e in BROKEN[c]],
                         ids=lambda e: e.name)
def test_every_broken_layer_names_its_evidence(entry: Broken) -> None:
    """No entry may count a catch for any reason: each catcher has a regex that needs a match."""
    assert_names_its_evidence(entry)


@pytest.mark.parametrize("entry", [e for c in CONTRACT_NAMES for e in BROKEN[c]],
                         ids=lambda e: e.name)
def test_broken_layer_declares_its_tier(entry: Broken) -> None:
    """Each bug is claimed by at least one property of the tier it belongs to."""
    assert entry.tier in TIERS
    tiers = {get(name).tier for name in entry.caught_by}
    assert entry.tier in tiers, f"{entry.name} is a {entry.tier} bug but only {tiers} catch it"


def test_evidence_rejects_a_catch_for_another_reason() -> None:
    """The check bites under a contract too: a scale layer that ignores alpha is caught by
    vjp_matches_contract, but not for the reversed sign of another entry."""
    by_name = {e.name: e for e in BROKEN["scale"]}
    reversed_sign, ignored = by_name["scale_reversed_sign"], by_name["scale_alpha_ignored"]
    result = _run(ignored.layer, "scale", "vjp_matches_contract")
    assert caught_for_its_bug(ignored, "vjp_matches_contract", result) is None
    why = caught_for_its_bug(reversed_sign, "vjp_matches_contract", result)
    assert why is not None and why.startswith("caught for another reason"), why


def test_zoo_is_big_enough_and_names_are_unique() -> None:
    assert set(BROKEN) == set(CORRECT) == set(CONTRACT_NAMES)
    names = [e.name for c in CONTRACT_NAMES for e in BROKEN[c] + CORRECT[c]]
    assert len(set(names)) == len(names), sorted(n for n in names if names.count(n) > 1)
    for contract in CONTRACT_NAMES:
        assert len(CORRECT[contract]) >= 2, contract
        assert len({c.style for c in CORRECT[contract]}) == len(CORRECT[contract]), contract
        assert len(BROKEN[contract]) >= 20, (contract, len(BROKEN[contract]))


def _members() -> list[Any]:
    return [pytest.param(contract, entry, id=f"{contract}-{entry.name}")
            for contract in CONTRACT_NAMES for entry in BROKEN[contract] + CORRECT[contract]]


@pytest.mark.parametrize(("contract", "entry"), _members())
def test_member_loads_by_its_module_level_name(contract: str, entry: Broken | Correct) -> None:
    """Every member is what ``contract_zoo:<its __qualname__>`` names (instances: their class),
    so that another process can load it by name."""
    obj = entry.layer
    named = obj if isinstance(obj, type) or callable(obj) and hasattr(obj, "__qualname__") else type(obj)
    module = importlib.import_module(named.__module__)
    assert module.__name__ == "contract_zoo", named
    assert getattr(module, named.__qualname__) is named
    spec = f"contract_zoo:{named.__qualname__}"
    loaded = load_layer(spec, contract=contract)
    assert loaded.obj is named and loaded.contract is CONTRACTS[contract]


def test_a_correct_scale_function_compiles_once_for_every_alpha() -> None:
    """A Function taking alpha as a tensor gets a tensor under every contract, not just reverse."""
    result = _run(CORRECT["scale"][0].layer, "scale", "compile_aot_eager")
    assert result.status == "pass", result.detail


#: Correct members that fail a compat property for a stated, expected reason (not their contract).
KNOWN_LIMITS: dict[tuple[str, str], str] = {
    **{(name, "func_jvp"): "a Function without a jvp staticmethod: no forward-mode AD"
       for name in ("scale_function", "scale_buffer", "stop_function", "stop_module_instance",
                    "round_function", "sign_function")},
    ("scale_hook", "func_jvp"): "a tensor hook changes the gradient only: forward-mode AD misses it",
}


def _correct_other_tier_cases() -> list[Any]:
    return [pytest.param(contract, entry, p.name, id=f"{contract}-{entry.name}-{p.name}")
            for contract in CONTRACT_NAMES for entry in CORRECT[contract]
            for p in all_properties(("compat", "hygiene"), contract=CONTRACTS[contract])]


@pytest.mark.parametrize(("contract", "entry", "prop"), _correct_other_tier_cases())
def test_correct_layer_passes_compat_and_hygiene(contract: str, entry: Correct, prop: str) -> None:
    """Beyond core: a correct member passes (or skips, for a stated reason) every compat and
    hygiene property of its contract, except the limits listed in :data:`KNOWN_LIMITS`, which
    must still fail (so the list stays true)."""
    result = _run(entry.layer, contract, prop)
    if (entry.name, prop) in KNOWN_LIMITS:
        assert result.status == "fail", (entry.name, prop, result.status, result.detail)
        return
    assert result.status in ("pass", "skip"), (
        f"{entry.name} ({entry.style}, {contract}) {prop}: {result.status} {result.detail}")
