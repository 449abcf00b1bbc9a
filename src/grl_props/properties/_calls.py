"""Calling a layer under test the way properties need: forward, VJP, and the contract's expected
output and gradient with the comparisons every property shares."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from grl_props.compare import assert_identical, assert_values_close, require_tensor
from grl_props.contracts import Contract

Layer = Callable[[Tensor], Any]


def forward(layer: Layer, x: Tensor) -> Tensor:
    """``layer(x)``, required to be a Tensor of ``x``'s shape, dtype and device."""
    return require_tensor(layer(x), "the layer's output", like=x)


def leaf(x: Tensor) -> Tensor:
    """A fresh leaf with ``x``'s values and strides that requires grad."""
    return x.detach().requires_grad_(True)


def vjp(layer: Layer, x: Tensor, v: Tensor, *, contract: Contract | None = None) -> Tensor:
    """The gradient reaching ``x`` when ``v`` flows back into ``layer(x)``.

    Under a contract whose gradient is zero (``stop``), a detached output or an absent gradient
    is that zero gradient; under any other, it is an ``AssertionError``.
    """
    x = leaf(x)
    out = forward(layer, x)
    absent_is_zero = contract is not None and contract.zero_gradient
    if not out.requires_grad and absent_is_zero:
        return torch.zeros_like(x)
    if not out.requires_grad:
        raise AssertionError(
            "the layer's output does not require grad although its input does: "
            "it detached the output, so no gradient can reach the input"
        )
    (grad,) = torch.autograd.grad(out, x, v, allow_unused=True)
    if grad is None and absent_is_zero:
        return torch.zeros_like(x)
    if grad is None:
        raise AssertionError("no gradient reached the input (autograd returned None)")
    return require_tensor(grad, "the input's gradient", like=x)


def grad_capable(x: Tensor) -> bool:
    """Whether ``x``'s dtype can require grad."""
    return x.is_floating_point() or x.is_complex()


def ratio_note(got: Tensor, reference: Tensor, expected: float, *, of: str = "gradient ÷ v") -> str:
    """One line saying how ``got`` relates to ``reference`` elementwise, for a failure message:
    ``gradient ÷ v on 8 ordinary elements: +0.3 (expected -0.3)``, or ``ranges from -1 to +1``.

    Only ordinary elements count (finite, nonzero ``reference`` well inside the dtype's range,
    finite ``got``), so a lost sign, an ignored or rounded alpha reads off directly; ``""`` when
    there is none or the tensors are complex.
    """
    if got.is_complex() or reference.is_complex() or got.shape != reference.shape:
        return ""
    if not (reference.is_floating_point() and got.is_floating_point()):
        return ""
    info = torch.finfo(reference.dtype)
    g, r = got.detach().cpu().to(torch.float64), reference.detach().cpu().to(torch.float64)
    ordinary = (torch.isfinite(g) & torch.isfinite(r) & (r.abs() >= info.tiny * 2.0**12)
                & (r.abs() <= info.max * 2.0**-12))
    if not bool(ordinary.any()):
        return ""
    ratios = g[ordinary] / r[ordinary]
    low, high = float(ratios.min()), float(ratios.max())
    if high - low <= 1e-4 * max(abs(low), abs(high)):
        found = f"{float(ratios.median()) + 0.0:+.5g}"  # + 0.0: -0.0 reads as +0
    else:
        found = f"ranges from {low:+.5g} to {high:+.5g}"
    count = int(ordinary.sum())
    return f"{of} on {count} ordinary element{'s' if count != 1 else ''}: {found} (expected {expected:+.5g})"


def with_note(exc: AssertionError, note: str) -> AssertionError:
    """``exc`` with ``note`` as a last line (Hypothesis adds the counterexample after it)."""
    return AssertionError(f"{exc}\n{note}" if note else str(exc))


def assert_forward(out: Any, x: Tensor, contract: Contract, *, what: str,
                   inputs: dict[str, Any] | None = None) -> None:
    """``out`` is the contract's forward of ``x``: bit for bit (NaN, ±inf, the sign of zero) for
    an identity forward; for another forward exactly, NaN equal to NaN, and the sign of zero
    compared only where the contract says so."""
    if contract.forward_is_identity:
        assert_identical(out, x, what=what, inputs=inputs)
        return
    expected = contract.expected_forward(x)
    out = require_tensor(out, what, like=expected)
    assert_values_close(out, expected, what=f"{what} (expected {contract.forward_text})",
                        exact=True, inputs={"x": x, **(inputs or {})})
    if contract.signed_zeros and out.is_floating_point():
        wrong = (out == 0) & (torch.signbit(out) != torch.signbit(expected))
        if bool(wrong.any()):
            index = tuple(int(i) for i in wrong.nonzero()[0])
            raise AssertionError(f"{what}: the sign of zero differs at index {index}: got "
                                 f"{out[index].item()!r}, expected {expected[index].item()!r}")


def assert_gradient(got: Tensor, x: Tensor, v: Tensor, alpha: float, contract: Contract, *,
                    what: str, inputs: dict[str, Any] | None = None, of: str = "gradient ÷ v",
                    exact: bool | None = None) -> None:
    """``got`` is the contract's VJP of ``v`` at ``x`` with ``alpha``: exactly where ``exact``
    says so, else within the dtype's tolerance (default: exact for a contract without alpha whose
    :meth:`Contract.exact_vjp` holds, since its gradient selects or zeroes v; within tolerance
    under a contract with alpha, where layers may round alpha); a failure ends with how ``got``
    relates to ``v`` (:func:`gain_note`)."""
    expected = contract.expected_vjp(x, v, alpha)
    if exact is None:
        exact = contract.exact_vjp(v, alpha) and not contract.takes_alpha
    try:
        assert_values_close(got, expected, what=what, exact=exact, inputs=inputs)
    except AssertionError as exc:
        raise with_note(exc, gain_note(contract, got, v, alpha, of=of)) from None


def gain_note(contract: Contract, got: Tensor, v: Tensor, *alphas: float,
              of: str = "gradient ÷ v") -> str:
    """:func:`ratio_note` against the contract's gain (the product of the gains at ``alphas``,
    for layers in a row); ``""`` where the contract's VJP is no gain."""
    if contract.gain is None:
        return ""
    expected = 1.0
    for alpha in alphas:
        expected *= contract.gain(alpha)
    return ratio_note(got, v, expected, of=of)


def alpha_from_gradient(grad: Tensor, contract: Contract) -> float:
    """The alpha a gradient on ones (float64 x) shows under a contract whose VJP is linear in
    alpha: its first element divided by the contract's gradient of ones at alpha 1."""
    ones = torch.ones(1, dtype=torch.float64)
    return float(grad.reshape(-1)[0]) / float(contract.expected_vjp(ones, ones, 1.0)[0])


def gain_seen(fn: Layer, contract: Contract) -> float:
    """The alpha a built layer applies, read off its gradient on ones (float64)."""
    x = torch.ones(3, dtype=torch.float64)
    return alpha_from_gradient(vjp(fn, x, torch.ones_like(x), contract=contract), contract)


def alpha_words(contract: Contract, what: str, alpha: float, inputs: dict[str, Any]
                ) -> tuple[str, dict[str, Any]]:
    """``what`` and the ``inputs`` of a failure message, with alpha named where the contract has
    one: ``("VJP(v) with alpha=0.5", {..., "alpha": 0.5})``, else ``("VJP(v)", {...})``."""
    if not contract.takes_alpha:
        return what, inputs
    return f"{what} with alpha={alpha!r}", {**inputs, "alpha": alpha}


def in_domain(contract: Contract, t: Tensor) -> Tensor:
    """``t`` mapped into the values ``contract`` promises anything about: a complex tensor to its
    real part where the contract is real-only, non-finite values to finite ones (``nan_to_num``)
    where it is finite-only; ``t`` itself otherwise. Drawn inputs pass through this, so that a
    strategy shared by every contract draws only what the contract speaks of."""
    if not contract.complex and t.is_complex():
        t = t.real.clone()
    if contract.finite_only and t.is_floating_point():
        t = torch.nan_to_num(t)
    return t


def domain_note(contract: Contract, *drawn: Tensor) -> str:
    """For a failure message: how :func:`in_domain` changed the drawn tensors (the counterexample
    shows them as drawn, the values above it are the ones the layer got); ``""`` if it did not."""
    changes = []
    if not contract.complex and any(t.is_complex() for t in drawn):
        changes.append("complex values to their real part")
    if contract.finite_only and any(t.is_floating_point() and not bool(torch.isfinite(t).all())
                                    for t in drawn):
        changes.append("non-finite values to finite ones (nan_to_num)")
    if not changes:
        return ""
    return (f"(the {contract.name} contract promises {'real, ' if not contract.complex else ''}"
            f"finite values only, so the drawn case was mapped: {' and '.join(changes)})")
