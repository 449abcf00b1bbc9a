"""The exact property matrix of two installed third-party layers.

Both pass every core property; everything else is pinned below (property → matrix cell for every
property that does not pass), so that a change in either layer or in the battery is noticed.
Both packages are pinned test dependencies (``pip install -e '.[test]'``): a missing one fails
these tests, it does not skip them.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from grl_props.adapters import load_layer
from grl_props.matrix import mark
from grl_props.properties import all_properties
from grl_props.runner import RunOptions, run_property

OPTIONS = RunOptions(isolate=False)

_NO_FUNCTORCH = {"func_grad": "FAIL", "func_vjp": "FAIL", "func_vmap": "FAIL", "func_jvp": "FAIL"}
_NO_CUDA = {} if torch.cuda.is_available() else {
    "autocast_cuda": "skip (needs CUDA)", "runs_after_to_cuda": "skip (needs CUDA)"}

#: spec → (module to import, {property: matrix cell} for every property that does not pass).
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    # old-style Function returning its input; alpha a plain float32 tensor attribute saved with x
    "pytorch_revgrad:RevGrad": ("pytorch_revgrad", {
        **_NO_FUNCTORCH,
        **_NO_CUDA,
        "opcheck": "skip (n/a)",
        "torchscript": "skip (not claimed)",
        "torch_export": "skip (not claimed)",
        "alpha_in_state_dict": "FAIL",
        "alpha_moved_by_to": "FAIL",
        "alpha_frozen_at_forward": "FAIL",
        "no_saved_activations": "FAIL",
        "output_safe_for_inplace": "FAIL",
    }),
    # torch.library op aliasing its input, float alpha read from a buffer; its module docstring
    # claims TorchScript support (adapters.DOCUMENTED_CLAIMS), which holds
    "gradient_reversal:GradientReversalLayer": ("gradient_reversal", {
        **_NO_FUNCTORCH,
        **_NO_CUDA,
        "compile_aot_eager": "FAIL",
        "compile_inductor": "FAIL",
        "opcheck": "FAIL",
        "torch_export": "skip (not claimed)",
        "output_safe_for_inplace": "FAIL",
    }),
}


@pytest.mark.parametrize(
    ("spec", "prop"),
    [
        pytest.param(spec, p, id=f"{spec}-{p.name}")
        for spec in EXPECTED for p in all_properties()
    ],
)
def test_matrix(spec: str, prop: object) -> None:
    module, not_passing = EXPECTED[spec]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"the pinned test dependency {module!r} is not installed "
                    f"(pip install -e '.[test]'): {exc}", pytrace=False)
    result = run_property(load_layer(spec), prop, OPTIONS)  # type: ignore[arg-type]
    expected = not_passing.get(result.name, "pass")
    if result.tier == "core":
        assert expected == "pass"
    assert mark(result) == expected, (
        f"{spec} {result.name}: expected {expected}, got {mark(result)}: {result.detail}"
    )


def test_gradient_reversal_claims_torchscript_in_its_own_documentation() -> None:
    """torchscript runs on it because its docs claim it (the registry), not by reading its docstring."""
    layer = load_layer("gradient_reversal:GradientReversalLayer")
    assert layer.claims == {"torchscript"}
    assert load_layer("pytorch_revgrad:RevGrad").claims == frozenset()
