"""A zoo of gradient reversal layers written for grl-props' own tests.

``BROKEN`` holds layers with one deliberate bug each (the pitfalls of
``/work/shared/notes/gradient-reversal.md``), with the tier the bug belongs to, the properties
that must catch it, and the evidence: a regex (or one per property) that each catch's detail must
match, written so that it names the bug, so that a catch for another reason does not count.
A catch is status ``fail``; status ``error`` (the layer raised where the property did not expect
it) counts only for an entry whose declared bug is that exception (``raises=True``).
``CORRECT`` holds right layers written in different styles; each must pass every core property.

Every layer is one of the kinds ``grl_props.adapters.load_layer`` accepts: an ``nn.Module`` class
with an ``alpha`` argument, a function ``f(x, alpha)`` or an ``autograd.Function``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BROKEN", "CORRECT", "Broken", "Correct", "assert_names_its_evidence",
           "caught_for_its_bug"]


@dataclass(frozen=True)
class Broken:
    """A layer with one bug, the tier it belongs to, the properties that must catch it, and the
    evidence that they caught it for this bug: a regex every catch's detail must match, or one
    per property. ``raises``: the bug is an exception the layer raises, so ``error`` counts."""

    name: str
    layer: Any
    bug: str
    tier: str
    caught_by: frozenset[str]
    evidence: str | Mapping[str, str]
    raises: bool = False

    def evidence_for(self, prop: str) -> str:
        """The regex a catch by ``prop`` must match."""
        return self.evidence if isinstance(self.evidence, str) else self.evidence[prop]


def caught_for_its_bug(entry: Broken, prop: str, result: Any) -> str | None:
    """``None`` when ``result`` (a ``PropertyResult``) is a catch of ``entry``'s own bug, else why
    it is not (shared by this zoo's tests and the contract zoo's)."""
    if result.status not in ("fail", "error"):
        return f"not caught: status {result.status} {result.detail}"
    if result.status == "error" and not entry.raises:
        return (f"errored, but {entry.name}'s bug is not an exception, so an error is a catch "
                f"for another reason: {result.detail}")
    if not re.search(entry.evidence_for(prop), result.detail):
        return (f"caught for another reason than {entry.bug!r} (no match for "
                f"{entry.evidence_for(prop)!r}): {result.detail}")
    return None


def assert_names_its_evidence(entry: Broken) -> None:
    """No entry may count a catch for any reason: each catcher has a regex that needs a match."""
    patterns = ([entry.evidence] if isinstance(entry.evidence, str)
                else list(entry.evidence.values()))
    if not isinstance(entry.evidence, str):
        assert set(entry.evidence) == set(entry.caught_by), entry.name
    for pattern in patterns:
        assert pattern.strip(), f"{entry.name} has empty evidence"
        assert re.search(pattern, "") is None, f"{entry.name}'s evidence {pattern!r} matches anything"
        assert re.search(pattern, "the layer raised RuntimeError: boom") is None, pattern


@dataclass(frozen=True)
class Correct:
    """A right layer, and the style it is written in."""

    name: str
    layer: Any
    style: str


# ---------------------------------------------------------------------------------------------
# Building blocks: a right Function, and a module holding alpha as a float64 buffer.


class _Reverse(torch.autograd.Function):
    """A right reversal: copy forward, ``-alpha * grad`` backward, alpha frozen at forward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float | Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        alpha = inputs[1]
        ctx.alpha = alpha.detach().clone() if isinstance(alpha, Tensor) else float(alpha)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


class _BufferModule(nn.Module):
    """Alpha as a float64 buffer (saved, moved, settable); subclasses write ``forward``."""

    alpha: Tensor

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))


class _GradFunction(torch.autograd.Function):
    """A copy forward whose backward is ``ctx.grad_fn(grad, alpha)``: for one-line backward bugs."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float, rule: Any) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha, ctx.rule = float(inputs[1]), inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        return ctx.rule(grad, ctx.alpha), None, None


def _with_backward(rule: Any) -> type[nn.Module]:
    """A module class (a float ``alpha`` argument) whose backward is ``rule(grad, alpha)``."""

    class Layer(nn.Module):
        def __init__(self, alpha: float = 1.0) -> None:
            super().__init__()
            self.alpha = float(alpha)

        def forward(self, x: Tensor) -> Tensor:
            return _GradFunction.apply(x, self.alpha, rule)

    Layer.__name__ = Layer.__qualname__ = rule.__name__
    Layer.__doc__ = f"Backward is ``{rule.__name__}(grad, alpha)``."
    return Layer


# ---------------------------------------------------------------------------------------------
# Core: alpha bugs (backward)


def lost_sign(g: Tensor, a: float) -> Tensor:
    return g * a


def alpha_ignored(g: Tensor, a: float) -> Tensor:
    return -g


def alpha_squared(g: Tensor, a: float) -> Tensor:
    return g * -(a * a)


def alpha_as_int(g: Tensor, a: float) -> Tensor:
    return g * -int(a)


# Core: dtype-, rank-, shape- and value-dependent backward bugs


def half_not_scaled(g: Tensor, a: float) -> Tensor:
    return -g if g.dtype == torch.float16 else g * -a  # "avoid fp16 overflow"


def float64_via_float32(g: Tensor, a: float) -> Tensor:
    if g.dtype == torch.float64:
        return (g.float() * -a).double()  # "faster": float64 gradients rounded to float32
    return g * -a


def alpha_in_half(g: Tensor, a: float) -> Tensor:
    return g * -torch.tensor(a, dtype=torch.float16).item()  # alpha kept in a .half() buffer


def rank3_first_sample_only(g: Tensor, a: float) -> Tensor:
    if g.dim() < 3 or g.shape[0] == 0:
        return g * -a
    out = g.clone()
    out[0] = out[0] * -a  # the "image path" scales only the first sample
    return out


def big_tensor_sign_dropped(g: Tensor, a: float) -> Tensor:
    return g * -a if g.numel() <= 8 else g * a  # the "vectorized path" forgets the sign


def overflow_to_finite(g: Tensor, a: float) -> Tensor:
    return torch.nan_to_num(g * -a)  # legitimate ±inf products become ±finfo.max


def zero_alpha_no_gradient(g: Tensor, a: float) -> Tensor | None:
    return None if a == 0 else g * -a  # "nothing to reverse"


def clipped(g: Tensor, a: float) -> Tensor:
    if g.is_complex():
        return g * -a
    return (g * -a).clamp(-1.0, 1.0)  # gradient clipping inside the layer


def contiguous_only(g: Tensor, a: float) -> Tensor:
    return (g.view(-1) * -a).view(g.shape)  # .view needs a contiguous upstream gradient


# Core: forward bugs


def nan_to_num_forward(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Sanitizes the activation: NaN → 0, ±inf → ±finfo.max."""
    if x.is_floating_point():
        x = torch.nan_to_num(x)
    return _Reverse.apply(x, alpha)


def clamp_to_half_range(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Clamps the activation to the float16 range "for AMP safety"."""
    if x.is_floating_point():
        x = x.clamp(-65504.0, 65504.0)
    return _Reverse.apply(x, alpha)


def detach_trick(x: Tensor, alpha: float | Tensor) -> Tensor:
    """No Function at all: ``x.detach() + (x - x.detach()) * -alpha`` (-0.0 → +0.0, inf → NaN)."""
    return x.detach() + (x - x.detach()) * -alpha


def detach_trick_inexact(x: Tensor, alpha: float | Tensor) -> Tensor:
    """``x.detach() * (1 + alpha) - x * alpha``: the identity only up to rounding."""
    return x.detach() * (1 + alpha) - x * alpha


class SkipsIfAlreadyReversed(_BufferModule):
    """Returns inputs that already come out of a reversal unchanged (an "idempotence" guard)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.grad_fn is not None and "Reverse" in type(x.grad_fn).__name__:
            return x
        return _Reverse.apply(x, self.alpha)


class WarmStart(nn.Module):
    """Warm-start schedule 0 → alpha with the step counter advanced inside forward."""

    def __init__(self, alpha: float = 1.0, max_iters: int = 100) -> None:
        super().__init__()
        self.alpha, self.max_iters, self.iter = float(alpha), max_iters, 0

    def forward(self, x: Tensor) -> Tensor:
        coeff = 2.0 * self.alpha / (1.0 + math.exp(-10.0 * self.iter / self.max_iters)) - self.alpha
        self.iter += 1
        return _Reverse.apply(x, coeff)


class DecaysInForward(_BufferModule):
    """Anneals alpha by 10 % after each forward (the scheduler's job done by the layer)."""

    def forward(self, x: Tensor) -> Tensor:
        out = _Reverse.apply(x, self.alpha)
        with torch.no_grad():
            self.alpha.mul_(0.9)
        return out


# Hygiene: state bugs


class ClassAlpha(nn.Module):
    """Keeps alpha on the class: every instance shares the last one built."""

    alpha = 1.0

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        ClassAlpha.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, ClassAlpha.alpha)


class _ByReference(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = inputs[1]  # the buffer itself, not a copy

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


class AlphaByReference(_BufferModule):
    """Backward reads the alpha buffer when it runs, not the value in force at forward."""

    def forward(self, x: Tensor) -> Tensor:
        return _ByReference.apply(x, self.alpha)


class PlainTensorAlpha(nn.Module):
    """Alpha as a plain tensor attribute: not a buffer, so ``.to()`` and state_dict miss it."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = torch.tensor(float(alpha), dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class NonPersistentAlpha(nn.Module):
    """Alpha as a non-persistent buffer: moved by ``.to()``, but not saved in state_dict."""

    alpha: Tensor

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class ParameterAlpha(nn.Module):
    """Alpha as an ``nn.Parameter``: an optimizer would train it."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class _SavesInput(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])  # kept alive for nothing
        ctx.alpha = float(inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * -ctx.alpha, None


def saves_input(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Saves the activation for backward, which needs only alpha."""
    return _SavesInput.apply(x, float(alpha))


def sanitizes_in_place(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Replaces NaN in the caller's tensor, in place (the input's version counter moves)."""
    with torch.no_grad():
        x.detach().nan_to_num_()
    return _Reverse.apply(x, alpha)


class _ReturnsView(_Reverse):
    @staticmethod
    def forward(x: Tensor, alpha: float | Tensor) -> Tensor:
        return x.view_as(x)  # a view made inside a Function: in-place ops on it raise


def returns_view(x: Tensor, alpha: float | Tensor) -> Tensor:
    """New-style Function whose forward returns ``x.view_as(x)``."""
    return _ReturnsView.apply(x, alpha)


def forces_grad(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Turns grad mode back on inside forward, so it records a graph under ``no_grad``."""
    with torch.enable_grad():
        return _Reverse.apply(x, alpha)


class LogsPeak(_BufferModule):
    """Records the activation's peak magnitude: ``max()`` of an empty tensor raises."""

    def forward(self, x: Tensor) -> Tensor:
        self.peak = float(x.detach().abs().max())
        return _Reverse.apply(x, self.alpha)


class _TimesOne(_Reverse):
    @staticmethod
    def forward(x: Tensor, alpha: float | Tensor) -> Tensor:
        return x * 1.0  # int and bool become float


def times_one(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Forward ``x * 1.0``: integer and bool inputs come back as float."""
    return _TimesOne.apply(x, alpha)


# Compat


class OldStyle(torch.autograd.Function):
    """Old-style Function (forward takes ctx, no setup_context): torch.func refuses it."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = float(alpha)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


class NoVmapRule(torch.autograd.Function):
    """New-style Function without ``generate_vmap_rule`` or a ``vmap`` staticmethod."""

    forward = staticmethod(_Reverse.forward)
    setup_context = staticmethod(_Reverse.setup_context)
    backward = staticmethod(_Reverse.backward)


class WrongJvp(_Reverse):
    """A custom ``jvp`` that forgets the sign: the tangent is ``+alpha * t``."""

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, alpha_tangent: Any) -> Tensor:
        return x_tangent * ctx.alpha


class _OnceDifferentiable(_Reverse):
    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


def once_differentiable_backward(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Backward marked ``@once_differentiable``: double backward raises."""
    return _OnceDifferentiable.apply(x, alpha)


class JvpBlocksCompile(_Reverse):
    """A right custom ``jvp``; but the compiler refuses any Function that defines one."""

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, alpha_tangent: Any) -> Tensor:
        return x_tangent * -ctx.alpha


class WithJvp(_BufferModule):
    """Reverses through a Function with a custom ``jvp``: fullgraph compilation fails."""

    def forward(self, x: Tensor) -> Tensor:
        return JvpBlocksCompile.apply(x, self.alpha)


class FloatAlpha(nn.Module):
    """Alpha as a Python float attribute: the compiler guards on its value and recompiles."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class CastsToFloat32(torch.autograd.Function):
    """``custom_fwd(cast_inputs=float32)``: under autocast a bf16 activation comes back float32."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)
    def forward(ctx: Any, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = float(alpha)
        return x.clone()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


class CastsToFloat32OnCuda(torch.autograd.Function):
    """``custom_fwd(device_type="cuda", cast_inputs=float32)``: under CUDA autocast an fp16
    activation comes back float32 (on CPU nothing happens)."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx: Any, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = float(alpha)
        return x.clone()

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


class _CpuAlphaInBackward(_Reverse):
    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        alpha = torch.tensor([float(ctx.alpha)], dtype=grad.dtype)  # on the CPU, shape [1]
        return grad * -alpha, None


def cpu_alpha_in_backward(x: Tensor, alpha: float | Tensor) -> Tensor:
    """Backward builds alpha as a CPU tensor of shape [1]: right on CPU, a device clash on CUDA."""
    return _CpuAlphaInBackward.apply(x, alpha)


@torch.library.custom_op("grl_props_zoo::reverse_without_fake", mutates_args=())
def _reverse_without_fake(x: Tensor, alpha: float) -> Tensor:
    return x.clone()


def _remember_alpha(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    ctx.alpha = inputs[1]


def _op_backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
    return grad * -ctx.alpha, None


_reverse_without_fake.register_autograd(_op_backward, setup_context=_remember_alpha)


def custom_op_without_fake(x: Tensor, alpha: float | Tensor) -> Tensor:
    """A ``torch.library.custom_op`` with no fake (meta) implementation."""
    return _reverse_without_fake(x, float(alpha))


class ClaimsTorchScript(nn.Module):
    """Claims TorchScript support, but reverses with a tensor hook: a lambda it cannot compile.

    (No class-level annotations: TorchScript would fail on their strings first, for another reason.)
    """

    __grl_props_claims__ = ("torchscript",)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        out = x.clone()
        if out.requires_grad:
            alpha = float(self.alpha)
            out.register_hook(lambda grad: grad * -alpha)
        return out


class DisclaimsTorchScript(ClaimsTorchScript):
    """This layer does not support TorchScript (torch.jit.script) or torch.export.

    The words are in its docstring, but it sets no claim: neither property may run.
    """

    __grl_props_claims__ = ()


class ClaimsExport(_BufferModule):
    """Claims torch.export support, but branches on the data."""

    __grl_props_claims__ = ("torch_export",)

    def forward(self, x: Tensor) -> Tensor:
        if bool((x == 0).all()):  # "nothing to reverse"
            return x
        return _Reverse.apply(x, self.alpha)


# ---------------------------------------------------------------------------------------------
# Correct layers, one per style


class NewStyle(_Reverse):
    """New-style Function: forward without ctx, ``setup_context``, ``generate_vmap_rule``."""


class OldStyleReturnsInput(torch.autograd.Function):
    """Old-style Function returning its input object itself (as pytorch-revgrad does)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = float(alpha)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


@torch.library.custom_op("grl_props_zoo::reverse", mutates_args=())
def _reverse_op(x: Tensor, alpha: float) -> Tensor:
    return x.clone()


@_reverse_op.register_fake
def _reverse_op_fake(x: Tensor, alpha: float) -> Tensor:
    return torch.empty_like(x)


_reverse_op.register_autograd(_op_backward, setup_context=_remember_alpha)


def custom_op_reversal(x: Tensor, alpha: float | Tensor) -> Tensor:
    """``torch.library.custom_op`` with a fake implementation and ``register_autograd``."""
    return _reverse_op(x, float(alpha))


class HookReversal(_BufferModule):
    """A copy whose gradient is reversed by a tensor hook."""

    def forward(self, x: Tensor) -> Tensor:
        out = x.clone()
        if out.requires_grad:
            alpha = float(self.alpha)
            out.register_hook(lambda grad: grad * -alpha)
        return out


# ---------------------------------------------------------------------------------------------
# The registry


def _broken(name: str, layer: Any, bug: str, tier: str, *caught_by: str,
            evidence: str | Mapping[str, str], raises: bool = False) -> Broken:
    return Broken(name, layer, bug, tier, frozenset(caught_by), evidence, raises)


_VJP = "vjp_is_negative_alpha_v"
#: How the layer's gradient relates to v (or to the gradient without the layer), as the
#: properties report it: "gradient ÷ v on 7 ordinary elements: +0.3 (expected -0.3)".
_RATIO = r"÷ [^\n]* on \d+ ordinary elements?: "

BROKEN: tuple[Broken, ...] = (
    # core: alpha
    _broken("lost_sign", _with_backward(lost_sign), "backward returns +alpha·v", "core",
            _VJP, "model_gradients",
            evidence=_RATIO + r"\+(\S+) \(expected -\1\)"),  # +alpha where -alpha is due
    _broken("alpha_ignored", _with_backward(alpha_ignored), "backward returns -v whatever alpha",
            "core", _VJP, "vjp_linear_in_alpha", "zero_alpha_gives_zero_gradient",
            evidence=_RATIO + r"-1 \(expected (?!-1\))"),  # -1 where another alpha is due
    _broken("alpha_squared", _with_backward(alpha_squared), "alpha applied twice: -alpha²·v",
            "core", _VJP, "vjp_linear_in_alpha", "composition",
            evidence={_VJP: _RATIO + r"-0\.09 \(expected -0\.3\)",
                      "vjp_linear_in_alpha": _RATIO + r"-4 \(expected -2\)",
                      "composition": _RATIO + r"\+0\.25 \(expected \+0\.5\)"}),
    _broken("alpha_as_int", _with_backward(alpha_as_int), "alpha truncated by int(alpha)",
            "core", _VJP, "vjp_linear_in_alpha",
            evidence=_RATIO + r"[+-]0 \(expected -0\.\d+\)"),  # alpha below 1 became 0
    _broken("zero_alpha_no_gradient", _with_backward(zero_alpha_no_gradient),
            "alpha = 0 returns a None gradient", "core", "zero_alpha_gives_zero_gradient",
            evidence=r"no gradient reached the input \(autograd returned None\)"),
    # core: dtype-, rank-, shape- and value-dependent
    _broken("half_not_scaled", _with_backward(half_not_scaled),
            "float16 gradients are negated but not scaled by alpha", "core", _VJP,
            # -1 where -alpha (alpha < 1) is due, on float16 (the smallest case, or the fixed one)
            evidence="(?s)" + _RATIO + r"-1 \(expected -0\.\d+\).*dtype=float16"),
    _broken("float64_via_float32", _with_backward(float64_via_float32),
            "float64 gradients are computed in float32", "core", _VJP,
            # a float64-only magnitude overflowed in float32 (the smallest failure, or the fixed
            # case shown after it)
            evidence=r"(?s)(?=.*dtype=float64)(?=.*non-finite elements? differs? \(e\.g\. -?\d[^ ]*"
                     r"e\+3\d\d → -?inf)"),
    _broken("alpha_in_half", _with_backward(alpha_in_half),
            "alpha rounded to float16 (0.3 → 0.30005) for every dtype", "core", _VJP,
            evidence=_RATIO + r"-0\.30005 \(expected -0\.3\)"),
    _broken("rank3_first_sample_only", _with_backward(rank3_first_sample_only),
            "for rank ≥ 3 only the first sample's gradient is reversed", "core", _VJP,
            evidence=r"(?s)" + _RATIO + r"ranges from -\S+ to \+1 .*x: shape=\(\d+, \d+, \d+"),
    _broken("big_tensor_sign_dropped", _with_backward(big_tensor_sign_dropped),
            "tensors of more than 8 elements get +alpha·v", "core", _VJP,
            evidence=r"(?s)Mismatched elements: \d+ / (9|\d\d+) .*" + _RATIO
                     + r"\+(\S+) \(expected -\2\)"),
    _broken("overflow_to_finite", _with_backward(overflow_to_finite),
            "nan_to_num in backward turns an overflowing -alpha·v into ±finfo.max", "core", _VJP,
            evidence=r"non-finite elements? differs? \(e\.g\. -?inf → -?3\.40282\d*e\+38"),
    _broken("clipped_gradient", _with_backward(clipped),
            "the reversed gradient is clipped to [-1, 1] (GradScaler sees scaled gradients)",
            "compat", "gradscaler_roundtrip", _VJP, "vjp_linear_in_v",
            # each: the gradient is capped at magnitude 1 (scaled by 2**16 under GradScaler)
            evidence={"gradscaler_roundtrip": _RATIO + r"ranges from -\d\.\d+e-05 to -\d\.\d+e-05",
                      _VJP: _RATIO + r"ranges from -0\.3 to -0\.0016667 ",  # 1/600 at v=-600
                      "vjp_linear_in_v": r"but got -1\.0\."}),
    _broken("nan_to_num_forward", nan_to_num_forward, "forward maps NaN → 0 and ±inf → ±max",
            "core", "forward_identity",
            evidence=r"non-finite elements? differs? \(e\.g\. (-?inf → -?3\.40282\d*e\+38|nan → 0\.0)"),
    _broken("clamp_to_half_range", clamp_to_half_range, "forward clamps to ±65504",
            "core", "forward_identity", evidence=r"elements? (differs?|changed) \(e\.g\. \S+ → -?65504\.0"),
    _broken("detach_trick", detach_trick,
            "x.detach() + (x - x.detach())·-alpha: -0.0 → +0.0 and inf → NaN in forward",
            "core", "forward_identity",
            evidence=r"the sign of zero differs|non-finite elements? differs? \(e\.g\. -?inf → nan"),
    _broken("detach_trick_inexact", detach_trick_inexact,
            "x.detach()·(1 + alpha) - x·alpha: forward inexact (rounding, -0.0 → +0.0)", "core",
            "forward_identity",
            evidence=r"finite elements? changed \(e\.g\.|the sign of zero differs"),
    _broken("skips_if_already_reversed", SkipsIfAlreadyReversed,
            "checks the input's grad_fn and skips a second reversal", "core", "composition",
            evidence=_RATIO + r"-\S+ \(expected \+"),  # reversed once: negative, not positive
    _broken("warm_start_counter", WarmStart,
            "warm-start schedule advanced in forward: the first call has alpha 0", "core",
            "repeatable", _VJP,
            evidence={"repeatable": r"call 2's gradient \(vs call 1's\)[^\n]*\n(?:[^\n]*: )?"
                                    r"expected -?0\.0, got",  # call 1 ran at alpha 0
                      _VJP: _RATIO + r"[+-]0 \(expected -0\.3\)"}),
    _broken("decays_in_forward", DecaysInForward, "alpha *= 0.9 after every forward", "core",
            "repeatable",
            evidence=r"Expected -1\.0 but got -0\.8999999"),  # call 2 runs at 0.9 · alpha
    # hygiene
    _broken("class_alpha", ClassAlpha, "alpha kept on the class, shared by all instances",
            "hygiene", "instances_independent",
            evidence=r"the first of two instances \(alphas 0\.375 and 1\.75\) reverses with "
                     r"alpha=1\.75"),
    _broken("alpha_by_reference", AlphaByReference,
            "backward reads the alpha buffer by reference (alpha changed after forward leaks in)",
            "hygiene", "alpha_frozen_at_forward",
            evidence=r"changed to 1\.75 .* before backward, and backward used alpha=1\.75"),
    _broken("plain_tensor_alpha", PlainTensorAlpha, "alpha is a plain tensor attribute",
            "hygiene", "alpha_moved_by_to", "alpha_in_state_dict",
            evidence={"alpha_moved_by_to": r"tensor attribute\(s\) alpha are not registered buffers",
                      "alpha_in_state_dict": r"alpha is not in state_dict \(keys: \[\]\)"}),
    _broken("non_persistent_alpha", NonPersistentAlpha,
            "alpha is a non-persistent buffer, missing from state_dict", "hygiene",
            "alpha_in_state_dict", evidence=r"alpha is not in state_dict \(keys: \[\]\)"),
    _broken("parameter_alpha", ParameterAlpha, "alpha is an nn.Parameter", "hygiene",
            "no_trainable_parameters", evidence=r"the layer has parameters \['alpha'\]"),
    _broken("saves_input", saves_input, "saves the input for backward", "hygiene",
            "no_saved_activations",
            evidence=r"saved tensor\(s\) of shape \[\([\d, ]+\)\] for backward"),
    _broken("sanitizes_in_place", sanitizes_in_place, "replaces NaN in the input in place",
            "hygiene", "input_not_mutated", evidence=r"version counter moved from \d+ to \d+"),
    _broken("returns_view", returns_view, "Function forward returns x.view_as(x)", "hygiene",
            "output_safe_for_inplace",
            evidence=r"Output 0 of _ReturnsView is a view and is being modified inplace"),
    _broken("forces_grad", forces_grad, "enable_grad inside forward records under no_grad",
            "hygiene", "no_grad_and_inference_mode",
            evidence=r"the output under no_grad records a graph"),
    _broken("contiguous_only", _with_backward(contiguous_only),
            "backward uses grad.view(-1): raises on non-contiguous upstream gradients",
            "hygiene", "noncontiguous_upstream_gradient", raises=True,
            evidence=r"the layer raised RuntimeError: view size is not compatible with input "
                     r"tensor's size and stride"),
    _broken("logs_peak", LogsPeak, "forward takes abs().max(): raises on zero-size inputs",
            "hygiene", "zero_size_inputs", raises=True,
            evidence=r"the layer raised RuntimeError: max\(\): Expected reduction dim[^\n]*\n"
                     r"Counterexample:[^\n]*\n\s+shape=\(([\d, ]*0[\d, ]*)\)"),
    _broken("times_one", times_one, "forward x * 1.0 turns integer inputs into float",
            "hygiene", "integer_inputs_handled_or_refused",
            evidence=r"input has dtype torch\.float32, expected torch\.(int64|int32|uint8|bool)"),
    # compat
    _broken("old_style", OldStyle, "old-style Function without setup_context", "compat",
            "func_grad", "func_vjp", "func_vmap", "func_jvp",
            evidence=r"raised RuntimeError: In order to use an autograd\.Function with functorch "
                     r"transforms .* it must override the setup_context staticmethod"),
    _broken("no_vmap_rule", NoVmapRule, "no generate_vmap_rule / vmap staticmethod", "compat",
            "func_vmap", evidence=r"You tried to vmap over NoVmapRule, but it does not have vmap "
                                  r"support"),
    _broken("wrong_jvp", WrongJvp, "custom jvp returns +alpha·t", "compat", "func_jvp",
            evidence=r"tangent ÷ t on \d+ ordinary elements?: \+(\S+) \(expected -\1\)"),
    _broken("once_differentiable", once_differentiable_backward,
            "backward marked @once_differentiable: no double backward", "compat",
            "double_backward",
            evidence=r"the derivative of VJP\(v\) with respect to v is None[^\n]*not differentiable"),
    _broken("with_jvp", WithJvp, "a custom jvp: fullgraph compilation refuses the Function",
            "compat", "compile_aot_eager", "compile_inductor",
            evidence=r"fullgraph=True\) raised Unsupported: Unsupported custom jvp"),
    _broken("float_alpha", FloatAlpha, "float alpha attribute: one compile per alpha value",
            "compat", "compile_aot_eager",
            evidence=r"compiled [3-9] graphs for 5 alpha values .* alpha is specialized"),
    _broken("casts_to_float32", CastsToFloat32,
            "custom_fwd(cast_inputs=float32): under autocast the output dtype changes", "compat",
            "autocast", evidence=r"dtype torch\.float32, expected torch\.bfloat16"),
    _broken("casts_to_float32_on_cuda", CastsToFloat32OnCuda,
            "custom_fwd(device_type='cuda', cast_inputs=float32): under CUDA autocast the output "
            "dtype changes", "compat", "autocast_cuda",
            evidence=r"dtype torch\.float32, expected torch\.float16"),
    _broken("custom_op_without_fake", custom_op_without_fake,
            "custom op registered without a fake implementation", "compat", "opcheck",
            evidence=r"test_faketensor failed with There was no fake impl registered"),
    _broken("claims_torchscript", ClaimsTorchScript,
            "claims TorchScript support but reverses with a hook lambda it cannot compile",
            "compat", "torchscript",
            evidence=r"torch\.jit\.script raised UnsupportedNodeError: Lambda aren't supported"),
    _broken("claims_export", ClaimsExport,
            "claims torch.export support but branches on the data", "compat", "torch_export",
            evidence=r"torch\.export\.export raised GuardOnDataDependentSymNode: Could not guard "
                     r"on data-dependent expression"),
    # hygiene, on CUDA only
    _broken("cpu_alpha_in_backward", cpu_alpha_in_backward,
            "backward builds alpha as a CPU tensor of shape [1]: a device clash on CUDA",
            "hygiene", "runs_after_to_cuda",
            evidence=r"on cuda the layer raised: Expected all tensors to be on the same device"),
)

CORRECT: tuple[Correct, ...] = (
    Correct("new_style", NewStyle, "new-style autograd.Function (setup_context, vmap rule)"),
    Correct("old_style_returns_input", OldStyleReturnsInput,
            "old-style autograd.Function returning its input"),
    Correct("custom_op", custom_op_reversal, "torch.library.custom_op with register_autograd"),
    Correct("hook", HookReversal, "nn.Module with a tensor hook on a copy"),
)



# ---------------------------------------------------------------------------------------------
# Remedies applied: each broken layer above with its catching property's remedy applied, and
# nothing else changed (``test_zoo.py`` checks that the fixed layer passes that property).


@dataclass(frozen=True)
class Fixed:
    """``broken`` (a ``BROKEN`` entry's name) with the remedy of ``prop`` applied: ``change``."""

    broken: str
    prop: str
    layer: Any
    change: str


def reversed_product(g: Tensor, a: float) -> Tensor:
    return g * -a


def reshaped(g: Tensor, a: float) -> Tensor:
    return (g.reshape(-1) * -a).reshape(g.shape)  # reshape copies where view would raise


def without_nan_to_num(x: Tensor, alpha: float | Tensor) -> Tensor:
    return _Reverse.apply(x, alpha)


class ReversesEveryInput(_BufferModule):
    """SkipsIfAlreadyReversed without the look at ``x.grad_fn``."""

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class ScheduledByTheLoop(_BufferModule):
    """WarmStart with the counter moved out of forward: the loop sets alpha with ``set_alpha``."""

    def set_alpha(self, alpha: float) -> None:
        with torch.no_grad():
            self.alpha.fill_(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class InstanceAlpha(_BufferModule):
    """ClassAlpha with alpha kept on the instance (a buffer)."""

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class _CopiesAlpha(_ByReference):
    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = inputs[1].detach().clone()  # a copy, not the buffer


class AlphaCopiedAtForward(_BufferModule):
    """AlphaByReference saving a copy of alpha at forward time."""

    def forward(self, x: Tensor) -> Tensor:
        return _CopiesAlpha.apply(x, self.alpha)


class BufferAlpha(_BufferModule):
    """PlainTensorAlpha / NonPersistentAlpha / ParameterAlpha with alpha a persistent buffer."""

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class _SavesOnlyAlpha(_SavesInput):
    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = float(inputs[1])  # the input is no longer saved

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


def saves_only_alpha(x: Tensor, alpha: float | Tensor) -> Tensor:
    return _SavesOnlyAlpha.apply(x, float(alpha))


def sanitizes_a_copy(x: Tensor, alpha: float | Tensor) -> Tensor:
    """sanitizes_in_place working on a copy."""
    return _Reverse.apply(torch.nan_to_num(x), alpha)


class _ReturnsClone(_Reverse):
    @staticmethod
    def forward(x: Tensor, alpha: float | Tensor) -> Tensor:
        return x.clone()


def returns_clone(x: Tensor, alpha: float | Tensor) -> Tensor:
    """returns_view returning ``x.clone()``; times_one's fix too."""
    return _ReturnsClone.apply(x, alpha)


def leaves_grad_mode(x: Tensor, alpha: float | Tensor) -> Tensor:
    """forces_grad without ``torch.enable_grad()``."""
    return _Reverse.apply(x, alpha)


class LogsPeakWhenNotEmpty(_BufferModule):
    """LogsPeak with the reduction guarded by ``if x.numel()``."""

    def forward(self, x: Tensor) -> Tensor:
        if x.numel():
            self.peak = float(x.detach().abs().max())
        return _Reverse.apply(x, self.alpha)


class NewStyleReverse(torch.autograd.Function):
    """OldStyle written new-style: forward without ctx, setup_context, generate_vmap_rule."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = float(inputs[1])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


class WithVmapRule(NoVmapRule):
    """NoVmapRule with ``generate_vmap_rule = True``."""

    generate_vmap_rule = True


class NewStyleWithJvp(NewStyleReverse):
    """OldStyle / WrongJvp as a new-style Function with a jvp returning ``-alpha * x_tangent``."""

    @staticmethod
    def jvp(ctx: Any, x_tangent: Tensor, alpha_tangent: Any) -> Tensor:
        return x_tangent * -ctx.alpha


class TwinForCompile(_BufferModule):
    """WithJvp calling a twin Function without a custom jvp while compiling."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.compiler.is_compiling():
            return _Reverse.apply(x, self.alpha)
        return JvpBlocksCompile.apply(x, self.alpha)


class _NoCast(torch.autograd.Function):
    """CastsToFloat32 without ``custom_fwd(cast_inputs=...)`` / ``custom_bwd``."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = float(alpha)
        return x.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -ctx.alpha, None


NoCast = _NoCast


def differentiable_backward(x: Tensor, alpha: float | Tensor) -> Tensor:
    """once_differentiable_backward without ``@once_differentiable``."""
    return _Reverse.apply(x, alpha)


class _FloatAlphaOnGradDevice(_Reverse):
    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * -float(ctx.alpha), None  # a Python float: no CPU tensor built


def alpha_as_float_in_backward(x: Tensor, alpha: float | Tensor) -> Tensor:
    return _FloatAlphaOnGradDevice.apply(x, alpha)


class ClaimsTorchScriptWithFunction(nn.Module):
    """ClaimsTorchScript reversing with an autograd.Function instead of a hook lambda.

    (No class-level annotations, as in ClaimsTorchScript.)
    """

    __grl_props_claims__ = ("torchscript",)

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class ClaimsExportWithoutBranch(_BufferModule):
    """ClaimsExport without the branch on the data."""

    __grl_props_claims__ = ("torch_export",)

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


FIXED: tuple[Fixed, ...] = (
    Fixed("nan_to_num_forward", "forward_identity", without_nan_to_num, "no nan_to_num in forward"),
    Fixed("lost_sign", "vjp_is_negative_alpha_v", _with_backward(reversed_product), "grad * -alpha"),
    Fixed("float64_via_float32", "vjp_is_negative_alpha_v", _with_backward(reversed_product),
          "grad * -alpha in the gradient's own dtype"),
    Fixed("clipped_gradient", "vjp_linear_in_v", _with_backward(reversed_product), "no clipping"),
    Fixed("alpha_squared", "vjp_linear_in_alpha", _with_backward(reversed_product),
          "alpha applied once"),
    Fixed("zero_alpha_no_gradient", "zero_alpha_gives_zero_gradient",
          _with_backward(reversed_product), "grad * -alpha for alpha 0 too"),
    Fixed("skips_if_already_reversed", "composition", ReversesEveryInput, "no look at grad_fn"),
    Fixed("warm_start_counter", "repeatable", ScheduledByTheLoop, "no counter in forward"),
    Fixed("lost_sign", "model_gradients", _with_backward(reversed_product), "grad * -alpha"),
    Fixed("old_style", "func_grad", NewStyleReverse, "new-style Function"),
    Fixed("old_style", "func_vjp", NewStyleReverse, "new-style Function"),
    Fixed("no_vmap_rule", "func_vmap", WithVmapRule, "generate_vmap_rule = True"),
    Fixed("old_style", "func_jvp", NewStyleWithJvp, "new-style Function with a jvp"),
    Fixed("wrong_jvp", "func_jvp", NewStyleWithJvp, "jvp returns -alpha * x_tangent"),
    Fixed("with_jvp", "compile_aot_eager", TwinForCompile, "a twin without jvp under compile"),
    Fixed("float_alpha", "compile_aot_eager", BufferAlpha, "alpha a tensor buffer"),
    Fixed("with_jvp", "compile_inductor", TwinForCompile, "a twin without jvp under compile"),
    Fixed("casts_to_float32", "autocast", NoCast, "no custom_fwd(cast_inputs=...)"),
    Fixed("casts_to_float32_on_cuda", "autocast_cuda", NoCast, "no custom_fwd(cast_inputs=...)"),
    Fixed("clipped_gradient", "gradscaler_roundtrip", _with_backward(reversed_product),
          "no clipping in the layer"),
    Fixed("once_differentiable", "double_backward", differentiable_backward,
          "no @once_differentiable"),
    Fixed("custom_op_without_fake", "opcheck", custom_op_reversal, "a fake implementation"),
    Fixed("claims_torchscript", "torchscript", ClaimsTorchScriptWithFunction,
          "a Function instead of a hook lambda"),
    Fixed("claims_export", "torch_export", ClaimsExportWithoutBranch, "no branch on the data"),
    Fixed("parameter_alpha", "no_trainable_parameters", BufferAlpha, "alpha a buffer"),
    Fixed("plain_tensor_alpha", "alpha_in_state_dict", BufferAlpha, "alpha a buffer"),
    Fixed("non_persistent_alpha", "alpha_in_state_dict", BufferAlpha, "alpha a persistent buffer"),
    Fixed("plain_tensor_alpha", "alpha_moved_by_to", BufferAlpha, "alpha a buffer"),
    Fixed("cpu_alpha_in_backward", "runs_after_to_cuda", alpha_as_float_in_backward,
          "alpha a Python float in backward"),
    Fixed("alpha_by_reference", "alpha_frozen_at_forward", AlphaCopiedAtForward,
          "a copy of alpha saved at forward"),
    Fixed("class_alpha", "instances_independent", InstanceAlpha, "alpha on the instance"),
    Fixed("saves_input", "no_saved_activations", saves_only_alpha, "only alpha saved"),
    Fixed("sanitizes_in_place", "input_not_mutated", sanitizes_a_copy, "works on a copy"),
    Fixed("returns_view", "output_safe_for_inplace", returns_clone, "returns x.clone()"),
    Fixed("forces_grad", "no_grad_and_inference_mode", leaves_grad_mode, "no enable_grad()"),
    Fixed("contiguous_only", "noncontiguous_upstream_gradient", _with_backward(reshaped),
          "reshape instead of view"),
    Fixed("logs_peak", "zero_size_inputs", LogsPeakWhenNotEmpty, "the reduction guarded"),
    Fixed("times_one", "integer_inputs_handled_or_refused", returns_clone, "x.clone(), not x * 1.0"),
)
