"""Forward-pass properties: the layer computes its contract's forward map, bit for bit."""

from __future__ import annotations

import torch

from grl_props import strategies as gs
from grl_props.adapters import LayerUnderTest
from grl_props.properties import register
from grl_props.properties._calls import assert_forward, forward, in_domain, leaf


def _forward_matches(layer: LayerUnderTest, case: gs.TensorCase, alpha: gs.AlphaCase) -> None:
    contract = layer.contract
    fn = layer.build(alpha.value if layer.any_alpha else None)
    drawn = in_domain(contract, case.tensor)
    x = leaf(drawn)
    out = forward(fn, x)
    assert_forward(out, drawn, contract, what="the forward output")
    if not out.requires_grad and not contract.zero_gradient:
        raise AssertionError("the output does not require grad although the input does")
    with torch.no_grad():
        plain = forward(fn, drawn.detach())
    assert_forward(plain, drawn, contract, what="the forward output for an input without grad")


@register(
    "core",
    "forward returns the input bit for bit (NaN, ±inf, -0.0, subnormals), same dtype, device, "
    "shape, and requires_grad passed through",
    given={"case": gs.tensor_cases(shape=gs.shapes(allow_empty=False)), "alpha": gs.alphas()},
    examples=tuple({"case": gs.typical_tensor_case(d), "alpha": gs.AlphaCase(0.3)}
                   for d in gs.FLOAT_DTYPES + gs.COMPLEX_DTYPES),
    remedy=("Return x.clone() from forward and change nothing on the way (no nan_to_num, clamp, "
            "cast or detach arithmetic); change the gradient only in backward."),
    contracts=("identity_forward",),
)
def forward_identity(layer: LayerUnderTest, case: gs.TensorCase, alpha: gs.AlphaCase) -> None:
    _forward_matches(layer, case, alpha)


@register(
    "core",
    "forward returns the contract's map of the input exactly (finite inputs of every float "
    "dtype; ±0 equal unless the contract compares signs), same dtype, device, shape, and "
    "requires_grad passed through",
    given={"case": gs.tensor_cases(shape=gs.shapes(allow_empty=False), dtype=gs.dtypes(complex=False),
                                   finite=True),
           "alpha": gs.alphas()},
    examples=tuple({"case": case(d), "alpha": gs.AlphaCase(0.3)} for d in gs.FLOAT_DTYPES
                   for case in (gs.edge_tensor_case, lambda d: gs.typical_tensor_case(d, finite=True))),
    remedy=("Compute forward with the contract's own function on the input as it is (torch.round,"
            " not floor(x + 0.5); torch.sign, not x >= 0), in the input's dtype."),
    contracts=("mapped_forward",),
)
def forward_matches_contract(layer: LayerUnderTest, case: gs.TensorCase, alpha: gs.AlphaCase) -> None:
    _forward_matches(layer, case, alpha)
