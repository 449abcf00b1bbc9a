"""Comparisons with one tolerance table for the whole project.

Failures read like ``torch.testing.assert_close``'s: mismatched elements, the greatest difference
and its index, prefixed with what was compared.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["TOLERANCES", "assert_identical", "assert_values_close", "require_tensor"]

#: (rtol, atol) by dtype, as ``torch.testing.assert_close`` defaults: one ulp-scale of rounding.
TOLERANCES: dict[torch.dtype, tuple[float, float]] = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
    torch.complex64: (1.3e-6, 1e-5),
    torch.complex128: (1e-7, 1e-7),
}


def require_tensor(value: Any, what: str, *, like: Tensor | None = None) -> Tensor:
    """``value`` as a Tensor of ``like``'s shape, dtype and device, or raise ``AssertionError``."""
    if not isinstance(value, Tensor):
        raise AssertionError(f"{what} is a {type(value).__name__}, expected a torch.Tensor")
    if like is not None:
        for attribute in ("shape", "dtype", "device"):
            got, want = getattr(value, attribute), getattr(like, attribute)
            if got != want:
                raise AssertionError(f"{what} has {attribute} {_show(got)}, expected {_show(want)}")
    return value


def _show(value: Any) -> str:
    return str(tuple(value)) if isinstance(value, torch.Size) else str(value)


def _real(t: Tensor) -> Tensor:
    return torch.view_as_real(t.resolve_conj()) if t.is_complex() else t


def assert_identical(actual: Any, expected: Tensor, *, what: str) -> None:
    """Bit-for-bit equality: same shape, dtype and device, NaN equals NaN, and the sign of zero."""
    actual = require_tensor(actual, what, like=expected)
    a, e = _real(actual.detach()), _real(expected.detach())
    torch.testing.assert_close(
        a, e, rtol=0, atol=0, equal_nan=True, check_stride=False,
        msg=lambda m: f"{what} differs from the input. {m}",
    )
    if a.is_floating_point():
        wrong_sign = (a == 0) & (torch.signbit(a) != torch.signbit(e))
        if wrong_sign.any():
            index = tuple(int(i) for i in wrong_sign.nonzero()[0])
            raise AssertionError(
                f"{what}: the sign of zero differs at index {index}: got {a[index].item()!r}, "
                f"expected {e[index].item()!r} ({int(wrong_sign.sum())} of {a.numel()} elements)"
            )


def assert_values_close(actual: Any, expected: Tensor, *, what: str, exact: bool = False) -> None:
    """Equal within ``TOLERANCES[dtype]`` (or exactly), NaN equals NaN, ±0 equal; same shape and dtype."""
    actual = require_tensor(actual, what, like=expected)
    rtol, atol = (0.0, 0.0) if exact else TOLERANCES.get(expected.dtype, (0.0, 0.0))
    bound = "exactly" if exact else f"within rtol={rtol:g}, atol={atol:g}"
    torch.testing.assert_close(
        actual.detach(), expected.detach(), rtol=rtol, atol=atol, equal_nan=True,
        check_stride=False, msg=lambda m: f"{what} is not as expected ({bound}). {m}",
    )
