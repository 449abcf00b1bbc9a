"""Hypothesis strategies for testing gradient reversal layers (public).

Everything here returns a Hypothesis strategy. Values are drawn through
``hypothesis.extra.numpy.arrays`` (float64 or complex128 elements rounded to the target dtype), so
shrinking moves towards small shapes, contiguous layouts, float32, alpha 1.0 and the value 0.0.

* :func:`shapes` — 0-d, zero-size and 1–6-d shapes with a bounded element count.
* :func:`dtypes` — floating and complex dtypes; integer and bool on request.
* :func:`devices` — ``cpu`` plus ``cuda`` / ``mps`` when present.
* :data:`LAYOUTS`, :func:`layouts` — contiguous, transposed, strided, expanded, channels_last.
* :func:`values` — finite values of every magnitude, ±inf, NaN, -0.0, subnormals and dtype extremes.
* :func:`alphas` — 0, ±1, powers of two, tiny, huge, negative and ordinary alphas.
* :func:`tensor_cases` — a :class:`TensorCase`: a tensor with a chosen shape, dtype, device,
  layout and values, and a description for counterexample reports.
* :func:`vjp_cases` — a :class:`VJPCase`: an input, an upstream gradient with its own values and
  layout, and an alpha.
* :func:`typical_tensor_case`, :func:`typical_vjp_case` — fixed cases of a given dtype, for
  ``@example``: Hypothesis draws dtypes unevenly, explicit cases make every dtype run at every seed.

Example::

    from hypothesis import given
    from grl_props import strategies as gs

    @given(gs.vjp_cases())
    def test_my_layer(case):
        x = case.x.tensor.requires_grad_()
        ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp
from torch import Tensor

__all__ = [
    "COMPLEX_DTYPES",
    "EDGE_VALUES",
    "FLOAT_DTYPES",
    "INTEGER_DTYPES",
    "LAYOUTS",
    "AlphaCase",
    "TensorCase",
    "VJPCase",
    "alphas",
    "edge_tensor_case",
    "edge_vjp_case",
    "nonfinite_vjp_case",
    "available_devices",
    "devices",
    "dtypes",
    "layouts",
    "shapes",
    "tensor_cases",
    "typical_tensor_case",
    "typical_vjp_case",
    "values",
    "vjp_cases",
    "with_layout",
]

FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)
INTEGER_DTYPES = (torch.int64, torch.int32, torch.uint8, torch.bool)
#: Memory layouts: how the tensor sits in memory; its values are the same in each.
LAYOUTS = ("contiguous", "transposed", "strided", "expanded", "channels_last")


def available_devices() -> list[str]:
    """``cpu``, then ``cuda`` and ``mps`` when this machine has them."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def shapes(*, min_dims: int = 0, max_dims: int = 6, max_side: int = 4, max_numel: int = 64,
           allow_empty: bool = True) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of ``min_dims``–``max_dims`` dims, sides up to ``max_side``, at most ``max_numel`` elements.

    Includes 0-d shapes ``()``, zero-size shapes (a side of 0) when ``allow_empty``, and leading
    dims of 1 and above 1. Shrinks towards ``()``.
    """
    if not 0 <= min_dims <= max_dims:
        raise InvalidArgument(f"need 0 <= min_dims <= max_dims, got {min_dims=} {max_dims=}")
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=0 if allow_empty else 1, max_side=max_side
    ).filter(lambda s: math.prod(s) <= max_numel)


def dtypes(*, floating: bool = True, complex: bool = True, integer: bool = False,
           half: bool = True) -> st.SearchStrategy[torch.dtype]:
    """Tensor dtypes; float32 first so that it is where failures shrink to.

    ``half`` includes float16 and bfloat16; ``integer`` adds int64, int32, uint8 and bool.
    """
    chosen: list[torch.dtype] = []
    if floating:
        chosen += [d for d in FLOAT_DTYPES if half or d not in (torch.float16, torch.bfloat16)]
    if complex:
        chosen += COMPLEX_DTYPES
    if integer:
        chosen += INTEGER_DTYPES
    if not chosen:
        raise InvalidArgument("dtypes() needs at least one of floating, complex, integer")
    return st.sampled_from(chosen)


def devices() -> st.SearchStrategy[str]:
    """Devices present on this machine (see :func:`available_devices`)."""
    return st.sampled_from(available_devices())


def layouts(*, include: tuple[str, ...] = LAYOUTS) -> st.SearchStrategy[str]:
    """Layout names from :data:`LAYOUTS`; a layout that does not fit a shape falls back to contiguous."""
    unknown = set(include) - set(LAYOUTS)
    if unknown:
        raise InvalidArgument(f"unknown layouts {sorted(unknown)}; choose from {LAYOUTS}")
    return st.sampled_from(include)


def _specials(dtype: torch.dtype) -> list[float]:
    info = torch.finfo(dtype)
    return [
        0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan,
        info.max, -info.max, info.tiny, -info.tiny,
        info.tiny * 2.0**-3, -info.tiny * 2.0**-3,  # subnormals
        info.eps, info.max / 2,
    ]


def values(dtype: torch.dtype, *, finite: bool = False) -> st.SearchStrategy[float]:
    """Real values that ``dtype`` can hold: every magnitude plus its special values.

    Unless ``finite``: ±inf and NaN. Always: -0.0, subnormals, ``finfo.max``, ``finfo.tiny``.
    The float drawn is rounded to ``dtype`` when the tensor is built.
    """
    real = dtype.to_real() if dtype.is_complex else dtype
    info = torch.finfo(real)
    width: Literal[16, 32, 64] = 16 if real == torch.float16 else 32 if real == torch.float32 else 64
    ordinary = st.floats(
        min_value=-float(info.max), max_value=float(info.max),
        allow_nan=False, allow_infinity=False, width=width,
    )
    specials = [v for v in _specials(real) if finite is False or math.isfinite(v)]
    return st.one_of(st.floats(-4.0, 4.0, width=width), ordinary, st.sampled_from(specials))


@dataclass
class TensorCase:
    """A generated tensor and how it was made (what a counterexample report shows)."""

    tensor: Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: str
    layout: str

    def describe(self) -> str:
        text = (
            f"shape={self.shape} dtype={str(self.dtype).removeprefix('torch.')} "
            f"device={self.device} layout={self.layout} stride={tuple(self.tensor.stride())}"
        )
        if self.tensor.numel() <= 12:
            text += f" values={self.tensor.detach().cpu().tolist()}"
        return text

    def __repr__(self) -> str:
        return f"TensorCase({self.describe()})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's counterexample printer
        printer.text(repr(self))


def with_layout(values: np.ndarray, layout: str, dtype: torch.dtype, device: str) -> tuple[Tensor, str]:
    """Place ``values`` in memory with ``layout``; return the tensor and the layout really used.

    A layout that does not fit (transposed below 2-d, channels_last outside 4-d, expanded with a
    leading dim of 1) falls back to contiguous; ``expanded`` repeats the first row.
    """
    base = torch.from_numpy(np.array(values))  # np.array keeps 0-d; ascontiguousarray would not
    base = base.to(dtype=dtype) if dtype.is_complex or dtype.is_floating_point else base.to(dtype)
    base = base.to(device)
    shape = tuple(base.shape)
    if layout == "transposed" and base.dim() >= 2:
        return base.transpose(-1, -2).contiguous().transpose(-1, -2), layout
    if layout == "strided" and base.dim() >= 1:
        wide = torch.zeros(*shape[:-1], shape[-1] * 2, dtype=base.dtype, device=device)
        wide[..., ::2] = base
        return wide[..., ::2], layout
    if layout == "expanded" and base.dim() >= 1 and shape[0] > 1:
        return base[:1].expand(shape), layout  # stride 0 along dim 0: every row equals the first
    if layout == "channels_last" and base.dim() == 4:
        return base.contiguous(memory_format=torch.channels_last), layout
    return base, "contiguous"


@st.composite
def tensor_cases(draw: Any, *, shape: Any = None, dtype: Any = None, device: Any = None,
                 layout: Any = None, finite: bool = False) -> TensorCase:
    """A :class:`TensorCase`; each argument is a fixed value, a strategy, or ``None`` for the default.

    Defaults: :func:`shapes`, :func:`dtypes` (floating and complex), :func:`devices`,
    :func:`layouts`, and :func:`values` of the drawn dtype (``finite`` excludes inf and NaN).
    Integer and bool dtypes get values 0..3.
    """
    shape = _resolve(draw, shape, shapes())
    dtype = _resolve(draw, dtype, dtypes())
    device = _resolve(draw, device, devices())
    layout = _resolve(draw, layout, layouts())
    if dtype.is_floating_point or dtype.is_complex:
        elements: Any = values(dtype, finite=finite)
        np_dtype: Any = np.complex128 if dtype.is_complex else np.float64
        if dtype.is_complex:
            elements = st.builds(lambda re, im: complex(re, im), elements, elements)
    else:
        elements, np_dtype = st.integers(0, 1 if dtype == torch.bool else 3), np.int64
    array = draw(hnp.arrays(np_dtype, shape, elements=elements))
    tensor, used = with_layout(array, layout, dtype, device)
    return TensorCase(tensor, tuple(shape), dtype, device, used)


@dataclass
class AlphaCase:
    """An alpha as a float and, when ``as_tensor``, passed as a 0-d tensor."""

    value: float
    as_tensor: bool = False

    def __repr__(self) -> str:  # shown after the argument's own name: ``alpha=0.5``, ``first=2.0``
        return repr(self.value) + (" (as a 0-d tensor)" if self.as_tensor else "")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def alphas(*, allow_zero: bool = True, allow_negative: bool = True, as_tensor: Any = False,
           min_magnitude: float = 0.0, max_magnitude: float = 1e30) -> st.SearchStrategy[AlphaCase]:
    """Alphas: 0, ±1, powers of two, tiny (1e-30), huge (1e30), negative and ordinary values.

    ``as_tensor`` is ``False``, ``True``, or a strategy of bools (both forms). Shrinks towards 1.0.
    """
    specials = [1.0, 0.5, 2.0, 0.1, 0.3, 1e-30, 1e30, 2.0**-20, 2.0**20, 0.0]
    floats = st.one_of(
        st.sampled_from(specials),
        st.builds(lambda k: 2.0**k, st.integers(-24, 24)),
        st.floats(0.0, 1000.0, allow_nan=False, allow_subnormal=False),
    )
    if allow_negative:
        floats = st.one_of(floats, floats.map(lambda a: -a))
    floats = floats.filter(
        lambda a: (allow_zero or a != 0) and min_magnitude <= abs(a) <= max_magnitude
    )
    tensor_flag = as_tensor if isinstance(as_tensor, st.SearchStrategy) else st.just(bool(as_tensor))
    return st.builds(AlphaCase, floats, tensor_flag)


@dataclass
class VJPCase:
    """An input, an upstream gradient ``v`` (own values and layout) and an alpha."""

    x: TensorCase
    v: TensorCase
    alpha: AlphaCase

    def __repr__(self) -> str:
        return f"VJPCase(x: {self.x.describe()}; v: {self.v.describe()}; alpha={self.alpha!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@st.composite
def vjp_cases(draw: Any, *, dtype: Any = None, finite: bool = True, alpha: Any = None) -> VJPCase:
    """A :class:`VJPCase` with ``x`` and ``v`` of one shape, dtype and device.

    ``finite`` (default) keeps inf/NaN out of ``v`` so that ``-alpha * v`` is a number;
    ``alpha`` defaults to :func:`alphas`.
    """
    x = draw(tensor_cases(dtype=dtype if dtype is not None else dtypes()))
    v = draw(tensor_cases(shape=x.shape, dtype=x.dtype, device=x.device, finite=finite))
    return VJPCase(x, v, draw(alpha if alpha is not None else alphas()))


def _resolve(draw: Any, given: Any, default: st.SearchStrategy[Any]) -> Any:
    if given is None:
        return draw(default)
    if isinstance(given, st.SearchStrategy):
        return draw(given)
    return given


def _typical_values(dtype: torch.dtype, finite: bool) -> list[float]:
    info = torch.finfo(dtype.to_real() if dtype.is_complex else dtype)
    ordinary = [1.5, -2.0, 0.0, -0.0, 3.25, -0.1, 7.0, 1e-3, -600.0]
    special = [info.tiny, float(info.max), info.tiny * 2.0**-3]
    special += [] if finite else [math.inf, -math.inf, math.nan]
    return ordinary[: 12 - len(special)] + special  # 12 values, every special one kept


def typical_tensor_case(dtype: torch.dtype, *, finite: bool = False, device: str = "cpu",
                        layout: str = "contiguous") -> TensorCase:
    """A fixed 3×4 case of ``dtype`` holding ordinary values, extremes and (unless ``finite``)
    ±inf and NaN; integer dtypes hold 0..3."""
    array: np.ndarray
    if dtype.is_floating_point or dtype.is_complex:
        real = np.array(_typical_values(dtype, finite) + [0.5] * 12, dtype=np.float64)[:12]
        array = real
        if dtype.is_complex:  # real and imaginary parts set apart: 1j * inf would make a NaN
            array = real.astype(np.complex128)
            array.imag = real[::-1]
    else:
        array = np.arange(12) % (2 if dtype == torch.bool else 4)
    tensor, used = with_layout(array.reshape(3, 4), layout, dtype, device)
    return TensorCase(tensor, (3, 4), dtype, device, used)


#: Values where rounding and sign conventions part: ties (half to even vs half up), ±1 (where a
#: clipped straight-through gradient switches), signed zeros.
EDGE_VALUES = (-2.5, -1.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1.5, 2.5, 3.5, 0.75)


def edge_tensor_case(dtype: torch.dtype) -> TensorCase:
    """A fixed 3×4 case of a float ``dtype`` holding :data:`EDGE_VALUES`."""
    tensor = torch.tensor(EDGE_VALUES, dtype=dtype).reshape(3, 4)
    return TensorCase(tensor, (3, 4), dtype, "cpu", "contiguous")


def edge_vjp_case(dtype: torch.dtype) -> VJPCase:
    """A fixed :class:`VJPCase` whose ``x`` is :func:`edge_tensor_case` (v finite, alpha 0.3)."""
    v = typical_tensor_case(dtype, finite=True)
    return VJPCase(edge_tensor_case(dtype), v, AlphaCase(0.3))


def nonfinite_vjp_case(dtype: torch.dtype) -> VJPCase:
    """A fixed :class:`VJPCase` whose ``v`` holds ±inf and NaN as well (x typical, alpha 0.3)."""
    return VJPCase(typical_tensor_case(dtype), typical_tensor_case(dtype), AlphaCase(0.3))


def typical_vjp_case(dtype: torch.dtype, alpha: float = 0.3, *, as_tensor: bool = False) -> VJPCase:
    """A fixed :class:`VJPCase` of ``dtype``: the typical input, a finite typical ``v``, ``alpha``."""
    x = typical_tensor_case(dtype)
    v = typical_tensor_case(dtype, finite=True)
    v = TensorCase(v.tensor.flip(0).contiguous(), v.shape, dtype, v.device, v.layout)
    return VJPCase(x, v, AlphaCase(alpha, as_tensor))
