"""Backward-pass properties: the vector-Jacobian product is the contract's (``-alpha * v`` for a
reversal), and its algebra."""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import strategies as st
from torch import nn

from grl_props import strategies as gs
from grl_props.adapters import LayerUnderTest
from grl_props.compare import assert_values_close
from grl_props.contracts import Contract, reference_layer
from grl_props.properties import register
from grl_props.properties._calls import (
    alpha_words,
    assert_gradient,
    domain_note,
    forward,
    gain_note,
    in_domain,
    ratio_note,
    vjp,
    with_note,
)

_NONZERO_SHAPES = gs.shapes(allow_empty=False)
_REAL = gs.dtypes(complex=False)
_ORDINARY_ALPHAS = gs.alphas(max_magnitude=1e4, min_magnitude=1e-4)


_VJP_CASES = gs.vjp_cases(alpha=gs.alphas(as_tensor=st.booleans()))
_VJP_EXAMPLES = tuple({"case": gs.typical_vjp_case(d, a)}
                      for d in gs.FLOAT_DTYPES + gs.COMPLEX_DTYPES for a in (0.3, 2.0))


def _check_vjp(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    """The gradient is the contract's VJP of v at x, in v's dtype (shared by the two VJP
    properties: the reversal's, and every other contract's)."""
    contract = layer.contract
    alpha = case.alpha.value if layer.any_alpha else layer.default_alpha
    fn = layer.build(alpha, as_tensor=case.alpha.as_tensor)
    x, v = in_domain(contract, case.x.tensor), in_domain(contract, case.v.tensor)
    got = vjp(fn, x, v, contract=contract)
    what, inputs = alpha_words(contract, "VJP(v)", alpha, {"x": x, "v": v})
    try:
        assert_gradient(got, x, v, alpha, contract, what=what, inputs=inputs,
                        exact=contract.exact_vjp(v, alpha))
    except AssertionError as exc:
        # Alpha held in float32 (pytorch-revgrad, CellCap) is accepted: its rounding can tip a
        # product near the dtype's maximum into overflow. Anything else fails as first reported.
        alpha32 = float(torch.tensor(alpha, dtype=torch.float32))
        if (not contract.takes_alpha or alpha32 == alpha
                or not _matches(got, x, v, alpha32, contract, what)):
            raise with_note(exc, domain_note(contract, case.x.tensor, case.v.tensor)) from None


def _matches(got: torch.Tensor, x: torch.Tensor, v: torch.Tensor, alpha: float,
             contract: Contract, what: str) -> bool:
    try:
        assert_gradient(got, x, v, alpha, contract, what=what, exact=contract.exact_vjp(v, alpha))
    except AssertionError:
        return False
    return True


@register(
    "core",
    "VJP(v) = -alpha·v (exact when alpha is a power of two, else within the dtype tolerance), "
    "gradient dtype = input dtype",
    given={"case": _VJP_CASES},
    examples=_VJP_EXAMPLES,
    remedy=("Return grad * -alpha from backward, in the gradient's own dtype, with alpha kept as "
            "a Python float or float64 (not rounded, negated twice, clipped or nan_to_num'd)."),
    contracts=("reverse",),
)
def vjp_is_negative_alpha_v(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    _check_vjp(layer, case)


@register(
    "core",
    "VJP(v) is the contract's VJP map (exact where it selects v or scales it by a power of two, "
    "else within the dtype tolerance), gradient dtype = input dtype",
    given={"case": _VJP_CASES},
    # v with ±inf and NaN too: a stop-gradient promises zero for every v (NaN·0 would be NaN).
    examples=_VJP_EXAMPLES + tuple({"case": case(d)} for d in gs.FLOAT_DTYPES
                                   for case in (gs.edge_vjp_case, gs.nonfinite_vjp_case)),
    remedy=("Return {backward} from backward, in the gradient's own dtype: not the gradient of "
            "the forward op (round's is zero), not a negated, clipped or unmasked one."),
    contracts=("not_reverse",),
)
def vjp_matches_contract(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    _check_vjp(layer, case)


@register(
    "core",
    "VJP is linear in v: VJP(a·v1 + b·v2) = a·VJP(v1) + b·VJP(v2)",
    given={"x": gs.tensor_cases(shape=_NONZERO_SHAPES, dtype=torch.float64, finite=True),
           "scales": st.tuples(st.sampled_from([1.0, -1.0, 0.5, 3.0]), st.sampled_from([1.0, -2.0, 0.25])),
           "alpha": _ORDINARY_ALPHAS},
    remedy=("Make backward return {backward}, with no clipping, clamping or other step that "
            "depends on the gradient's values."),
    contracts=("linear_in_v",),
)
def vjp_linear_in_v(layer: LayerUnderTest, x: gs.TensorCase, scales: tuple[float, float],
                    alpha: gs.AlphaCase) -> None:
    fn, contract = layer.build(alpha.value if layer.any_alpha else None), layer.contract
    v1, v2 = _upstream(x.shape, 1), _upstream(x.shape, 2)
    a, b = scales
    combined = vjp(fn, x.tensor, a * v1 + b * v2, contract=contract)
    separate = (a * vjp(fn, x.tensor, v1, contract=contract)
                + b * vjp(fn, x.tensor, v2, contract=contract))
    assert_values_close(combined, separate, what=f"VJP({a}·v1 + {b}·v2) vs {a}·VJP(v1) + {b}·VJP(v2)")


@register(
    "core",
    "VJP is linear in alpha: VJP at alpha1 + alpha2 = VJP at alpha1 + VJP at alpha2",
    given={"x": gs.tensor_cases(shape=_NONZERO_SHAPES, dtype=torch.float64, finite=True),
           "first": _ORDINARY_ALPHAS, "second": _ORDINARY_ALPHAS},
    requires=("any_alpha",),
    remedy=("Apply alpha exactly once ({backward}), with alpha as given (not squared, truncated "
            "by int() or ignored)."),
    contracts=("alpha",),
)
def vjp_linear_in_alpha(layer: LayerUnderTest, x: gs.TensorCase, first: gs.AlphaCase,
                        second: gs.AlphaCase) -> None:
    a1, a2, contract = first.value, second.value, layer.contract
    v = _upstream(x.shape)
    total = vjp(layer.build(a1 + a2), x.tensor, v, contract=contract)
    first_part = vjp(layer.build(a1), x.tensor, v, contract=contract)
    second_part = vjp(layer.build(a2), x.tensor, v, contract=contract)
    parts = first_part + second_part
    # Alpha may be held in float32 (pytorch-revgrad and CellCap do): allow its rounding.
    bound = 2.0**-23 * (abs(a1) + abs(a2) + abs(a1 + a2)) * v.abs()
    excess = (total - parts).abs() - bound
    if bool((excess > 0).any()):
        index = tuple(int(i) for i in torch.unravel_index(excess.argmax(), excess.shape))
        raise AssertionError(
            f"VJP at alpha {a1!r} + {a2!r} differs from the sum of the VJPs by more than float32 "
            f"rounding of alpha: {total[index].item()!r} vs {parts[index].item()!r} at index {index}"
            + "".join(f"\nat alpha {a!r}: {note}" for a, note in (
                (a1 + a2, gain_note(contract, total, v, a1 + a2)),
                (a1, gain_note(contract, first_part, v, a1)),
                (a2, gain_note(contract, second_part, v, a2))) if note)
        )


def _upstream(shape: tuple[int, ...], salt: int = 0) -> torch.Tensor:
    """An ordinary float64 upstream gradient, fixed by the shape (Hypothesis drives the shape)."""
    generator = torch.Generator().manual_seed(hash((shape, salt)) % 2**31)
    return torch.randn(shape, dtype=torch.float64, generator=generator)


@register(
    "core",
    "alpha = 0 gives a gradient of exact zeros (not None, not NaN) for finite v",
    given={"case": gs.vjp_cases(alpha=st.just(gs.AlphaCase(0.0)))},
    requires=("any_alpha",),
    examples=tuple({"case": gs.typical_vjp_case(d, 0.0)} for d in gs.FLOAT_DTYPES + gs.COMPLEX_DTYPES),
    remedy=("Return {backward} from backward for every alpha, including 0: never None, -grad "
            "or a skipped step."),
    contracts=("alpha",),
)
def zero_alpha_gives_zero_gradient(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    x, v = in_domain(layer.contract, case.x.tensor), in_domain(layer.contract, case.v.tensor)
    got = vjp(layer.build(0.0), x, v, contract=layer.contract)
    try:
        assert_values_close(got, torch.zeros_like(v), what="the gradient at alpha=0",
                            exact=True, inputs={"x": x, "v": v, "alpha": 0.0})
    except AssertionError as exc:
        raise with_note(exc, ratio_note(got, v, 0.0)) from None


@register(
    "core",
    "two layers in a row compose: the gradient is the VJP map applied twice (+alpha1·alpha2·v for "
    "a reversal), each layer rounding on its own",
    # Ordinary alphas: an alpha outside the dtype's range (1e-308 in float32) is rounded to 0 by
    # any float32 arithmetic, and inf·0 is NaN; that is arithmetic, not composition.
    given={"case": gs.vjp_cases(dtype=_REAL, alpha=_ORDINARY_ALPHAS), "second": _ORDINARY_ALPHAS},
    remedy=("Treat every input the same way and in the gradient's own dtype: do not look at "
            "x.grad_fn, skip inputs that already passed through the layer, or multiply by a "
            "float32 alpha tensor that demotes a float64 gradient."),
)
def composition(layer: LayerUnderTest, case: gs.VJPCase, second: gs.AlphaCase) -> None:
    contract = layer.contract
    a1 = case.alpha.value if layer.any_alpha else layer.default_alpha
    a2 = second.value if layer.any_alpha else layer.default_alpha
    first_layer, second_layer = layer.build(a1), layer.build(a2)

    def both(x: torch.Tensor) -> torch.Tensor:
        return second_layer(forward(first_layer, x))

    x, v = in_domain(contract, case.x.tensor), in_domain(contract, case.v.tensor)
    got = vjp(both, x, v, contract=contract)
    # The gradient meets the second layer first; each layer rounds (and may overflow) on its own.
    between = contract.expected_vjp(contract.expected_forward(x), v, a2)
    expected = contract.expected_vjp(x, between, a1)
    exact = contract.exact_vjp(v, a2) and contract.exact_vjp(between, a1)
    what, inputs = ((f"VJP through alpha={a1!r} then alpha={a2!r}", {"v": v, "alpha1": a1, "alpha2": a2})
                    if contract.takes_alpha else ("VJP through two layers in a row", {"x": x, "v": v}))
    try:
        assert_values_close(got, expected, what=what, exact=exact, inputs=inputs)
    except AssertionError as exc:
        note = gain_note(contract, got, v, a1, a2)
        mapped = domain_note(contract, case.x.tensor, case.v.tensor)
        raise with_note(exc, "\n".join(n for n in (note, mapped) if n)) from None


@register(
    "core",
    "calling the same instance again on the same input gives the same output and gradient",
    given={"case": gs.vjp_cases(dtype=_REAL)},
    remedy=("Keep forward free of side effects on alpha: move warm-start counters and decay out "
            "of forward into the training loop, which sets alpha between steps."),
)
def repeatable(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    fn, contract = layer.build(case.alpha.value if layer.any_alpha else None), layer.contract
    x, v = in_domain(contract, case.x.tensor), in_domain(contract, case.v.tensor)
    first = vjp(fn, x, v, contract=contract)
    for call in (2, 3):
        again = vjp(fn, x, v, contract=contract)
        assert_values_close(again, first, what=f"call {call}'s gradient (vs call 1's)", exact=True)


@register(
    "core",
    "in encoder → layer → head, head parameters get their usual gradients and encoder "
    "parameters exactly -alpha times the gradients without the layer (under another contract: "
    "the gradients through the contract's own maps)",
    given={"batch": st.integers(1, 5), "width": st.integers(1, 6), "alpha": _ORDINARY_ALPHAS,
           "seed": st.integers(0, 2**16)},
    remedy=("Compute forward as {forward} and return {backward} from backward, so that layers "
            "before it get the contract's gradient and layers after it their usual ones."),
)
def model_gradients(layer: LayerUnderTest, batch: int, width: int, alpha: gs.AlphaCase,
                    seed: int) -> None:
    contract = layer.contract
    a = alpha.value if layer.any_alpha else layer.default_alpha
    fn = layer.build(a)
    torch.manual_seed(seed)
    encoder = nn.Linear(3, width).double()
    head = nn.Sequential(nn.Tanh(), nn.Linear(width, 2)).double()
    x = torch.randn(batch, 3, dtype=torch.float64)

    def gradients(through: Callable[[torch.Tensor], torch.Tensor] | None) -> list[torch.Tensor]:
        encoder.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        z = encoder(x)
        if through is not None:
            z = forward(through, z)
        head(z).square().sum().backward()
        params = [*encoder.parameters(), *head.parameters()]
        if contract.zero_gradient:  # a stop-gradient may leave no gradient at all: that is zero
            return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in params]
        if any(p.grad is None for p in params):
            raise AssertionError("a parameter got no gradient through the layer")
        return [p.grad.clone() for p in params]  # type: ignore[union-attr]

    plain, promised = gradients(None), gradients(reference_layer(contract, a))
    got = gradients(fn)
    names = ["encoder.weight", "encoder.bias", "head.weight", "head.bias"]
    for name, g_plain, g_promised, g_got in zip(names, plain, promised, got, strict=True):
        if name.startswith("head"):
            assert_values_close(g_got, g_promised, what=f"{name}'s gradient", exact=True)
            continue
        what = f"{name}'s gradient (alpha={a!r})" if contract.takes_alpha else f"{name}'s gradient"
        try:
            assert_values_close(g_got, g_promised, what=what,
                                inputs={"alpha": a} if contract.takes_alpha else None)
        except AssertionError as exc:
            note = gain_note(contract, g_got, g_plain, a,
                             of=f"{name}'s gradient ÷ its gradient without the layer")
            raise with_note(exc, note) from None
