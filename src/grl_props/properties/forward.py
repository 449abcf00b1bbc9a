"""Forward-pass properties: the layer is the identity, bit for bit."""

from __future__ import annotations

import torch

from grl_props import strategies as gs
from grl_props.adapters import LayerUnderTest
from grl_props.compare import assert_identical
from grl_props.properties import register
from grl_props.properties._calls import forward, leaf


@register(
    "core",
    "forward returns the input bit for bit (NaN, ±inf, -0.0, subnormals), same dtype, device, "
    "shape, and requires_grad passed through",
    given={"case": gs.tensor_cases(shape=gs.shapes(allow_empty=False)), "alpha": gs.alphas()},
    examples=tuple({"case": gs.typical_tensor_case(d), "alpha": gs.AlphaCase(0.3)}
                   for d in gs.FLOAT_DTYPES + gs.COMPLEX_DTYPES),
    remedy=("Return x.clone() from forward and change nothing on the way (no nan_to_num, clamp, "
            "cast or detach arithmetic); reverse the gradient only in backward."),
)
def forward_identity(layer: LayerUnderTest, case: gs.TensorCase, alpha: gs.AlphaCase) -> None:
    fn = layer.build(alpha.value if layer.any_alpha else None)
    x = leaf(case.tensor)
    out = forward(fn, x)
    assert_identical(out, case.tensor, what="the forward output")
    if not out.requires_grad:
        raise AssertionError("the output does not require grad although the input does")
    with torch.no_grad():
        plain = forward(fn, case.tensor.detach())
    assert_identical(plain, case.tensor, what="the forward output for an input without grad")

