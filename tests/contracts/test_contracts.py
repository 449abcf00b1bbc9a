"""Contracts as objects: the built-in maps, resolving names and specs, and each battery."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from grl_props.adapters import SpecError, load_layer
from grl_props.contracts import (
    CONTRACTS,
    REVERSE,
    SCALE,
    STE_ROUND,
    STE_SIGN,
    STOP,
    ContractError,
    contract_reference,
    resolve_contract,
)
from grl_props.properties import all_properties

X = torch.tensor([-2.5, -1.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5, 2.5, 0.75, -3.0],
                 dtype=torch.float64)
V = torch.arange(1.0, 13.0, dtype=torch.float64)


def test_the_built_in_maps_are_what_their_names_say():
    assert torch.equal(REVERSE.expected_forward(X), X)
    assert torch.equal(REVERSE.expected_vjp(X, V, 0.5), -0.5 * V)
    assert torch.equal(SCALE.expected_vjp(X, V, 0.5), 0.5 * V)
    assert torch.equal(STOP.expected_vjp(X, torch.full_like(V, float("nan")), 1.0),
                       torch.zeros_like(V))  # a stop-gradient blocks NaN too
    rounded = STE_ROUND.expected_forward(X)  # half to even: 2.5 → 2, -0.5 → -0
    assert rounded.tolist() == [-2.0, -2.0, -1.0, -0.0, -0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 1.0, -3.0]
    assert torch.equal(STE_ROUND.expected_vjp(X, V, 1.0), V)
    assert STE_SIGN.expected_forward(X).tolist() == [-1, -1, -1, -1, 0, 0, 1, 1, 1, 1, 1, -1]
    inside = (X.abs() <= 1).to(V.dtype)  # |x| = 1 is inside
    assert torch.equal(STE_SIGN.expected_vjp(X, V, 1.0), V * inside)
    assert STE_SIGN.expected_vjp(X, V, 1.0)[2] == V[2]


def test_expected_gradient_is_rounded_once_to_the_gradient_dtype():
    v = torch.tensor([0.1, 3.0], dtype=torch.float32)
    got = SCALE.expected_vjp(v, v, 0.3)
    assert got.dtype == torch.float32
    assert torch.equal(got, (v.double() * 0.3).float())


def test_names_specs_and_objects_resolve_and_bad_ones_get_one_sentence():
    assert resolve_contract(None) is REVERSE
    for name, contract in CONTRACTS.items():
        assert resolve_contract(name) is contract
        assert contract_reference(contract) == name
    assert resolve_contract(SCALE) is SCALE
    user = resolve_contract("user_contracts:CLIPPED_REVERSE")
    assert user.name == "clipped-reverse" and contract_reference(user) == "user_contracts:CLIPPED_REVERSE"
    for bad, words in (("flip", "unknown contract 'flip'"),
                       ("no_such_module_xyz:C", "importing 'no_such_module_xyz'"),
                       ("user_contracts:_identity", "not a grl_props.contracts.Contract"),
                       (3, "got int")):
        with pytest.raises(ContractError, match=words) as info:
            resolve_contract(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(SpecError, match="unknown contract"):
        load_layer("sibling_layers:ste_round", contract="flip")
    borrowed = dataclasses.replace(SCALE, name="reverse")  # names decide the battery
    with pytest.raises(ContractError, match="needs a name other than the built-in 'reverse'"):
        resolve_contract(borrowed)


def test_each_battery_holds_the_properties_that_apply_to_its_contract():
    reverse = {p.name for p in all_properties()}
    assert reverse == {p.name for p in all_properties(contract=REVERSE)}
    assert len(reverse) == 34 and "vjp_is_negative_alpha_v" in reverse
    assert not reverse & {"vjp_matches_contract", "forward_matches_contract"}
    scale = {p.name for p in all_properties(contract=SCALE)}
    assert scale == reverse - {"vjp_is_negative_alpha_v"} | {"vjp_matches_contract"}
    alpha_only = {"vjp_linear_in_alpha", "zero_alpha_gives_zero_gradient", "alpha_in_state_dict",
                  "alpha_frozen_at_forward", "instances_independent"}
    stop = {p.name for p in all_properties(contract=STOP)}
    assert stop == scale - alpha_only - {"double_backward"}
    ste_round = {p.name for p in all_properties(contract=STE_ROUND)}
    assert ste_round == scale - alpha_only - {"forward_identity"} | {"forward_matches_contract"}
    ste_sign = {p.name for p in all_properties(contract=STE_SIGN)}
    assert ste_sign == ste_round - {"no_saved_activations"}
    clipped = {p.name for p in all_properties(contract=resolve_contract(
        "user_contracts:CLIPPED_REVERSE"))}
    assert clipped == scale - {"vjp_linear_in_v", "func_jvp", "gradscaler_roundtrip"}


def test_layers_without_alpha_load_as_functions_functions_and_modules():
    one = load_layer("sibling_layers:ste_round", contract="ste-round")
    assert not one.any_alpha and one.kind == "function"
    x = torch.tensor([0.5, 1.5, 2.2])
    assert one.build(0.3)(x).tolist() == [0.0, 2.0, 2.0]  # alpha ignored
    with pytest.raises(SpecError, match="taking one argument"):
        load_layer("sibling_layers:GradMultiply.backward", contract="stop")
    module = load_layer(torch.nn.Identity, contract="stop")
    assert module.kind == "module_class" and isinstance(module.build(), torch.nn.Identity)
    with pytest.raises(SpecError, match="without arguments"):
        load_layer(torch.nn.Linear, contract="stop")


def test_remedies_name_each_contract_s_own_code():
    for contract in CONTRACTS.values():
        for prop in all_properties(contract=contract):
            remedy = prop.remedy_for(contract)
            assert "{" not in remedy and remedy.endswith(".") and ". " not in remedy, (prop.name,
                                                                                    remedy)
            if contract is not REVERSE:  # no reversal advice for a layer that does not reverse
                assert "-alpha" not in remedy and "revers" not in remedy.lower(), (
                    contract.name, prop.name, remedy)
    double = next(p for p in all_properties(contract=SCALE) if p.name == "double_backward")
    assert "(grad * alpha)" in double.remedy_for(SCALE)
    assert "(grad * -alpha)" in double.remedy_for(REVERSE)
    linear = next(p for p in all_properties(contract=STE_SIGN) if p.name == "vjp_linear_in_v")
    assert "return grad * (x.abs() <= 1)," in linear.remedy_for(STE_SIGN)
