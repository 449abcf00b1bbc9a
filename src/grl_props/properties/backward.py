"""Backward-pass properties: the vector-Jacobian product is ``-alpha * v``, and its algebra."""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import nn

from grl_props import strategies as gs
from grl_props.adapters import LayerUnderTest
from grl_props.compare import assert_values_close
from grl_props.properties import register
from grl_props.properties._calls import (
    exact_product,
    expected_vjp,
    forward,
    ratio_note,
    vjp,
    with_note,
)

_NONZERO_SHAPES = gs.shapes(allow_empty=False)
_REAL = gs.dtypes(complex=False)
_ORDINARY_ALPHAS = gs.alphas(max_magnitude=1e4, min_magnitude=1e-4)


@register(
    "core",
    "VJP(v) = -alpha·v (exact when alpha is a power of two, else within the dtype tolerance), "
    "gradient dtype = input dtype",
    given={"case": gs.vjp_cases(alpha=gs.alphas(as_tensor=st.booleans()))},
    examples=tuple({"case": gs.typical_vjp_case(d, a)}
                   for d in gs.FLOAT_DTYPES + gs.COMPLEX_DTYPES for a in (0.3, 2.0)),
    remedy=("Return grad * -alpha from backward, in the gradient's own dtype, with alpha kept as "
            "a Python float or float64 (not rounded, negated twice, clipped or nan_to_num'd)."),
)
def vjp_is_negative_alpha_v(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    alpha = case.alpha.value if layer.any_alpha else layer.default_alpha
    fn = layer.build(alpha, as_tensor=case.alpha.as_tensor)
    v = case.v.tensor
    got = vjp(fn, case.x.tensor, v)
    what = f"VJP(v) with alpha={alpha!r}"
    try:
        assert_values_close(got, expected_vjp(v, alpha), what=what, exact=exact_product(v, alpha),
                            inputs={"x": case.x.tensor, "v": v, "alpha": alpha})
    except AssertionError as exc:
        # Alpha held in float32 (pytorch-revgrad, CellCap) is accepted: its rounding can tip a
        # product near the dtype's maximum into overflow. Anything else fails as first reported.
        alpha32 = float(torch.tensor(alpha, dtype=torch.float32))
        if alpha32 == alpha or not _matches(got, expected_vjp(v, alpha32), what, alpha32, v):
            raise with_note(exc, ratio_note(got, v, -alpha)) from None


def _matches(got: torch.Tensor, expected: torch.Tensor, what: str, alpha: float,
             v: torch.Tensor) -> bool:
    try:
        assert_values_close(got, expected, what=what, exact=exact_product(v, alpha))
    except AssertionError:
        return False
    return True


@register(
    "core",
    "VJP is linear in v: VJP(a·v1 + b·v2) = a·VJP(v1) + b·VJP(v2)",
    given={"x": gs.tensor_cases(shape=_NONZERO_SHAPES, dtype=torch.float64, finite=True),
           "scales": st.tuples(st.sampled_from([1.0, -1.0, 0.5, 3.0]), st.sampled_from([1.0, -2.0, 0.25])),
           "alpha": _ORDINARY_ALPHAS},
    remedy=("Make backward the plain product grad * -alpha, with no clipping, clamping or other "
            "step that depends on the gradient's values."),
)
def vjp_linear_in_v(layer: LayerUnderTest, x: gs.TensorCase, scales: tuple[float, float],
                    alpha: gs.AlphaCase) -> None:
    fn = layer.build(alpha.value if layer.any_alpha else None)
    v1, v2 = _upstream(x.shape, 1), _upstream(x.shape, 2)
    a, b = scales
    combined = vjp(fn, x.tensor, a * v1 + b * v2)
    separate = a * vjp(fn, x.tensor, v1) + b * vjp(fn, x.tensor, v2)
    assert_values_close(combined, separate, what=f"VJP({a}·v1 + {b}·v2) vs {a}·VJP(v1) + {b}·VJP(v2)")


@register(
    "core",
    "VJP is linear in alpha: VJP at alpha1 + alpha2 = VJP at alpha1 + VJP at alpha2",
    given={"x": gs.tensor_cases(shape=_NONZERO_SHAPES, dtype=torch.float64, finite=True),
           "first": _ORDINARY_ALPHAS, "second": _ORDINARY_ALPHAS},
    requires=("any_alpha",),
    remedy=("Multiply the gradient by -alpha exactly once, with alpha as given (not squared, "
            "truncated by int() or ignored)."),
)
def vjp_linear_in_alpha(layer: LayerUnderTest, x: gs.TensorCase, first: gs.AlphaCase,
                        second: gs.AlphaCase) -> None:
    a1, a2 = first.value, second.value
    v = _upstream(x.shape)
    total = vjp(layer.build(a1 + a2), x.tensor, v)
    first_part, second_part = vjp(layer.build(a1), x.tensor, v), vjp(layer.build(a2), x.tensor, v)
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
                (a1 + a2, ratio_note(total, v, -(a1 + a2))), (a1, ratio_note(first_part, v, -a1)),
                (a2, ratio_note(second_part, v, -a2))) if note)
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
    remedy=("Return grad * -alpha from backward for every alpha, including 0: never None, -grad "
            "or a skipped reversal."),
)
def zero_alpha_gives_zero_gradient(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    got = vjp(layer.build(0.0), case.x.tensor, case.v.tensor)
    try:
        assert_values_close(got, torch.zeros_like(case.v.tensor), what="the gradient at alpha=0",
                            exact=True, inputs={"x": case.x.tensor, "v": case.v.tensor, "alpha": 0.0})
    except AssertionError as exc:
        raise with_note(exc, ratio_note(got, case.v.tensor, 0.0)) from None


@register(
    "core",
    "two layers in a row compose to a gradient of +alpha1·alpha2·v and the identity in forward",
    # Ordinary alphas: an alpha outside the dtype's range (1e-308 in float32) is rounded to 0 by
    # any float32 arithmetic, and inf·0 is NaN; that is arithmetic, not composition.
    given={"case": gs.vjp_cases(dtype=_REAL, alpha=_ORDINARY_ALPHAS), "second": _ORDINARY_ALPHAS},
    remedy=("Reverse every input the same way: do not look at x.grad_fn or skip inputs that "
            "already passed through a reversal."),
)
def composition(layer: LayerUnderTest, case: gs.VJPCase, second: gs.AlphaCase) -> None:
    a1 = case.alpha.value if layer.any_alpha else layer.default_alpha
    a2 = second.value if layer.any_alpha else layer.default_alpha
    first_layer, second_layer = layer.build(a1), layer.build(a2)

    def both(x: torch.Tensor) -> torch.Tensor:
        return second_layer(forward(first_layer, x))

    v = case.v.tensor
    got = vjp(both, case.x.tensor, v)
    # The gradient meets the second layer first; each layer rounds (and may overflow) on its own.
    between = expected_vjp(v, a2)
    expected = expected_vjp(between, a1)
    exact = exact_product(v, a2) and exact_product(between, a1)
    try:
        assert_values_close(got, expected, what=f"VJP through alpha={a1!r} then alpha={a2!r}",
                            exact=exact, inputs={"v": v, "alpha1": a1, "alpha2": a2})
    except AssertionError as exc:
        raise with_note(exc, ratio_note(got, v, a1 * a2)) from None


@register(
    "core",
    "calling the same instance again on the same input gives the same output and gradient",
    given={"case": gs.vjp_cases(dtype=_REAL)},
    remedy=("Keep forward free of side effects on alpha: move warm-start counters and decay out "
            "of forward into the training loop, which sets alpha between steps."),
)
def repeatable(layer: LayerUnderTest, case: gs.VJPCase) -> None:
    fn = layer.build(case.alpha.value if layer.any_alpha else None)
    first = vjp(fn, case.x.tensor, case.v.tensor)
    for call in (2, 3):
        again = vjp(fn, case.x.tensor, case.v.tensor)
        assert_values_close(again, first, what=f"call {call}'s gradient (vs call 1's)", exact=True)


@register(
    "core",
    "in encoder → layer → head, head parameters get their usual gradients and encoder "
    "parameters exactly -alpha times the gradients without the layer",
    given={"batch": st.integers(1, 5), "width": st.integers(1, 6), "alpha": _ORDINARY_ALPHAS,
           "seed": st.integers(0, 2**16)},
    remedy=("Pass the activation through unchanged in forward and return grad * -alpha from "
            "backward, so that layers before it get -alpha times their usual gradients and layers"
            " after it their usual ones."),
)
def model_gradients(layer: LayerUnderTest, batch: int, width: int, alpha: gs.AlphaCase,
                    seed: int) -> None:
    a = alpha.value if layer.any_alpha else layer.default_alpha
    fn = layer.build(a)
    torch.manual_seed(seed)
    encoder = nn.Linear(3, width).double()
    head = nn.Sequential(nn.Tanh(), nn.Linear(width, 2)).double()
    x = torch.randn(batch, 3, dtype=torch.float64)

    def gradients(through_layer: bool) -> list[torch.Tensor]:
        encoder.zero_grad(set_to_none=True)
        head.zero_grad(set_to_none=True)
        z = encoder(x)
        if through_layer:
            z = forward(fn, z)
        head(z).square().sum().backward()
        params = [*encoder.parameters(), *head.parameters()]
        if any(p.grad is None for p in params):
            raise AssertionError("a parameter got no gradient through the layer")
        return [p.grad.clone() for p in params]  # type: ignore[union-attr]

    plain, reversed_ = gradients(False), gradients(True)
    names = ["encoder.weight", "encoder.bias", "head.weight", "head.bias"]
    for name, g_plain, g_rev in zip(names, plain, reversed_, strict=True):
        if name.startswith("head"):
            assert_values_close(g_rev, g_plain, what=f"{name}'s gradient", exact=True)
        else:
            try:
                assert_values_close(g_rev, -a * g_plain, what=f"{name}'s gradient (alpha={a!r})",
                                    inputs={"alpha": a})
            except AssertionError as exc:
                note = ratio_note(g_rev, g_plain, -a, of=f"{name}'s gradient ÷ its gradient "
                                  "without the layer")
                raise with_note(exc, note) from None
