"""Comparisons with one tolerance table for the whole project.

Failures read like ``torch.testing.assert_close``'s: mismatched elements, the greatest difference
and its index, prefixed with what was compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["TOLERANCES", "assert_identical", "assert_values_close", "change_note", "require_tensor",
           "value_line"]

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


def change_note(actual: Tensor, expected: Tensor, *, finite: bool = True) -> str:
    """What changed, for a failure message: elements where a non-finite value is involved (``inf
    → 3.4028234663852886e+38``), and (with ``finite``) finite elements that changed, each with its
    first example; ``""`` for non-float tensors or when nothing differs."""
    a, e = _real(actual.detach()).cpu(), _real(expected.detach()).cpu()
    if not (a.is_floating_point() and e.is_floating_point()) or a.shape != e.shape:
        return ""
    differ = (a != e) & ~(torch.isnan(a) & torch.isnan(e))
    kinds = [("non-finite", differ & ~(torch.isfinite(a) & torch.isfinite(e)), "differ"),
             ("finite", differ & torch.isfinite(a) & torch.isfinite(e), "changed")]
    parts = []
    for label, where, verb in kinds[: 2 if finite else 1]:
        count = int(where.sum())
        if count:
            index = tuple(int(i) for i in where.nonzero()[0])
            word = "element" if count == 1 else "elements"
            verb = "differs" if (count, verb) == (1, "differ") else verb
            parts.append(f"{count} {label} {word} {verb} (e.g. {e[index].item()!r} → "
                         f"{a[index].item()!r} at index {index})")
    return "; ".join(parts)


#: Tensors of at most this many elements are shown whole in :func:`value_line`.
SHOWN_WHOLE = 4


def _text(value: Any, dtype: torch.dtype) -> str:
    """A value as its dtype would print it shortest: ``0.1`` for float32 0.1, not 0.10000000149."""
    if isinstance(value, list):
        return "[" + ", ".join(_text(v, dtype) for v in value) + "]"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if dtype == torch.float16:
        return str(np.float16(value))
    if dtype in (torch.float32, torch.bfloat16, torch.complex64):
        return str(np.float32(value))
    return repr(value)


def _shown(t: Tensor, index: tuple[int, ...] | None) -> str:
    t = t.detach().cpu()
    if t.is_complex():
        value = t[index] if index is not None else t
        return str(value.tolist())
    return _text((t[index] if index is not None else t).tolist(), t.dtype)


def value_line(actual: Tensor, expected: Tensor, *, inputs: Mapping[str, Any] | None = None,
               mismatched: Tensor | None = None) -> str:
    """One line with what went in and what came out, for a failure message:
    ``x = 1.0, v = 1.0, alpha = 0.5: expected -0.5, got 0.5``.

    Tensors of at most :data:`SHOWN_WHOLE` elements are shown whole; larger ones at the first
    element of greatest relative difference (``at index (0, 2): x = ..., v = ...: expected ...,
    got ...``; among ``mismatched`` when given). ``inputs`` maps names to tensors (shown the same
    way when they have the output's shape) or plain values (shown as they are); ``""`` when the
    shapes differ.
    """
    a, e = actual.detach().cpu(), expected.detach().cpu()
    if a.shape != e.shape or a.numel() == 0:
        return ""
    index: tuple[int, ...] | None = None
    if a.numel() > SHOWN_WHOLE:
        wide = torch.complex128 if a.is_complex() or e.is_complex() else torch.float64
        diff = (a.to(wide) - e.to(wide)).abs() / e.to(wide).abs()
        diff = diff.nan_to_num(nan=float("inf"), posinf=float("inf"))
        if mismatched is not None and bool(mismatched.any()):
            diff = torch.where(mismatched.cpu(), diff, torch.full_like(diff, -1.0))
        index = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    shown = []
    for name, value in (inputs or {}).items():
        if isinstance(value, Tensor):
            if value.shape == a.shape:
                shown.append(f"{name} = {_shown(value, index)}")
            elif value.numel() == 1:
                shown.append(f"{name} = {_shown(value.reshape(()), None)}")
        else:
            shown.append(f"{name} = {value!r}")
    where = f"at index {index}: " if index is not None else ""
    head = f"{where}{', '.join(shown)}: " if shown else where
    return f"{head}expected {_shown(e, index)}, got {_shown(a, index)}"


def _mismatched(a: Tensor, e: Tensor, rtol: float, atol: float) -> Tensor:
    wide = torch.complex128 if a.is_complex() or e.is_complex() else torch.float64
    return ~torch.isclose(a.detach().cpu().to(wide), e.detach().cpu().to(wide), rtol=rtol, atol=atol,
                          equal_nan=True)


def assert_identical(actual: Any, expected: Tensor, *, what: str,
                     inputs: Mapping[str, Any] | None = None) -> None:
    """Bit-for-bit equality: same shape, dtype and device, NaN equals NaN, and the sign of zero.

    A failure shows the values in one line (:func:`value_line`) before torch's statistics.
    """
    actual = require_tensor(actual, what, like=expected)
    a, e = _real(actual.detach()), _real(expected.detach())
    note = change_note(a, e)

    def message(m: str) -> str:
        line = value_line(actual, expected, inputs=inputs,
                          mismatched=_mismatched(actual, expected, 0.0, 0.0))
        return f"{what} differs from the input.\n" + (f"{line}\n" if line else "") + m + (
            f"\n{note}" if note else "")

    torch.testing.assert_close(a, e, rtol=0, atol=0, equal_nan=True, check_stride=False,
                               msg=message)
    if a.is_floating_point():
        wrong_sign = (a == 0) & (torch.signbit(a) != torch.signbit(e))
        if wrong_sign.any():
            index = tuple(int(i) for i in wrong_sign.nonzero()[0])
            raise AssertionError(
                f"{what}: the sign of zero differs at index {index}: got {a[index].item()!r}, "
                f"expected {e[index].item()!r} ({int(wrong_sign.sum())} of {a.numel()} elements)"
            )


def assert_values_close(actual: Any, expected: Tensor, *, what: str, exact: bool = False,
                        inputs: Mapping[str, Any] | None = None) -> None:
    """Equal within ``TOLERANCES[dtype]`` (or exactly), NaN equals NaN, ±0 equal; same shape and dtype.

    A failure shows ``inputs`` and the expected and actual values in one line
    (:func:`value_line`) before torch's mismatch statistics.
    """
    actual = require_tensor(actual, what, like=expected)
    rtol, atol = (0.0, 0.0) if exact else TOLERANCES.get(expected.dtype, (0.0, 0.0))
    bound = "exactly" if exact else f"within rtol={rtol:g}, atol={atol:g}"

    def message(m: str) -> str:
        line = value_line(actual, expected, inputs=inputs,
                          mismatched=_mismatched(actual, expected, rtol, atol))
        note = change_note(actual, expected, finite=False)
        return f"{what} is not as expected ({bound}).\n" + (f"{line}\n" if line else "") + m + (
            f"\n{note}" if note else "")

    torch.testing.assert_close(actual.detach(), expected.detach(), rtol=rtol, atol=atol,
                               equal_nan=True, check_stride=False, msg=message)
