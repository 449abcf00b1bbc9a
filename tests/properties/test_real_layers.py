"""The exact property matrix of two installed third-party layers.

Both pass every core property; everything else is pinned below (property → status for every
property that does not pass), so that a change in either layer or in the battery is noticed.
"""

from __future__ import annotations

import pytest

from grl_props.adapters import load_layer
from grl_props.properties import all_properties
from grl_props.runner import RunOptions, run_property

OPTIONS = RunOptions(isolate=False)

_NO_FUNCTORCH = {"func_grad": "fail", "func_vjp": "fail", "func_vmap": "fail", "func_jvp": "fail"}

#: spec → (module to import, {property: status} for every property that does not pass).
EXPECTED: dict[str, tuple[str, dict[str, str]]] = {
    # old-style Function returning its input; alpha a plain float32 tensor attribute saved with x
    "pytorch_revgrad:RevGrad": ("pytorch_revgrad", {
        **_NO_FUNCTORCH,
        "opcheck": "skip",
        "torchscript": "skip",
        "torch_export": "skip",
        "alpha_in_state_dict": "fail",
        "alpha_moved_by_to": "fail",
        "alpha_frozen_at_forward": "fail",
        "no_saved_activations": "fail",
        "output_safe_for_inplace": "fail",
    }),
    # torch.library op aliasing its input, float alpha read from a buffer
    "gradient_reversal:GradientReversalLayer": ("gradient_reversal", {
        **_NO_FUNCTORCH,
        "compile_aot_eager": "fail",
        "compile_inductor": "fail",
        "opcheck": "fail",
        "torch_export": "skip",
        "output_safe_for_inplace": "fail",
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
    pytest.importorskip(module)
    result = run_property(load_layer(spec), prop, OPTIONS)  # type: ignore[arg-type]
    expected = not_passing.get(result.name, "pass")
    if result.tier == "core":
        assert expected == "pass"
    assert result.status == expected, (
        f"{spec} {result.name}: expected {expected}, got {result.status}: {result.detail}"
    )
