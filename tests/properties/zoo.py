"""A zoo of gradient reversal layers written for grl-props' own tests.

``BROKEN`` holds layers with one deliberate bug each (the pitfalls of
``/work/shared/notes/gradient-reversal.md``), with the tier the bug belongs to and the properties
that must catch it (status ``fail`` or ``error``). ``CORRECT`` holds right layers written in
different styles; each must pass every core property.

Every layer is one of the kinds ``grl_props.adapters.load_layer`` accepts: an ``nn.Module`` class
with an ``alpha`` argument, a function ``f(x, alpha)`` or an ``autograd.Function``.
(This docstring deliberately names no compiler or exporter: the battery reads a layer's module
docstring to decide which of them the layer claims to support.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BROKEN", "CORRECT", "Broken", "Correct"]


@dataclass(frozen=True)
class Broken:
    """A layer with one bug, the tier it belongs to, and the properties that must catch it."""

    name: str
    layer: Any
    bug: str
    tier: str
    caught_by: frozenset[str]
    evidence: str = ""  # a regex every catch's detail must match: caught for this bug's reason


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


class ClaimsTorchScript(_BufferModule):
    """Gradient reversal, TorchScript compatible (torch.jit.script) -- it is not: Function.apply."""

    def forward(self, x: Tensor) -> Tensor:
        return _Reverse.apply(x, self.alpha)


class ClaimsExport(_BufferModule):
    """Gradient reversal, exportable with torch.export -- it branches on the data."""

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
            evidence: str = "") -> Broken:
    return Broken(name, layer, bug, tier, frozenset(caught_by), evidence)


_VJP = "vjp_is_negative_alpha_v"

BROKEN: tuple[Broken, ...] = (
    # core: alpha
    _broken("lost_sign", _with_backward(lost_sign), "backward returns +alpha·v", "core",
            _VJP, "model_gradients"),
    _broken("alpha_ignored", _with_backward(alpha_ignored), "backward returns -v whatever alpha",
            "core", _VJP, "vjp_linear_in_alpha", "zero_alpha_gives_zero_gradient"),
    _broken("alpha_squared", _with_backward(alpha_squared), "alpha applied twice: -alpha²·v",
            "core", _VJP, "vjp_linear_in_alpha", "composition"),
    _broken("alpha_as_int", _with_backward(alpha_as_int), "alpha truncated by int(alpha)",
            "core", _VJP, "vjp_linear_in_alpha"),
    _broken("zero_alpha_no_gradient", _with_backward(zero_alpha_no_gradient),
            "alpha = 0 returns a None gradient", "core", "zero_alpha_gives_zero_gradient",
            evidence="returned None"),
    # core: dtype-, rank-, shape- and value-dependent
    _broken("half_not_scaled", _with_backward(half_not_scaled),
            "float16 gradients are negated but not scaled by alpha", "core", _VJP,
            evidence="dtype=float16"),
    _broken("float64_via_float32", _with_backward(float64_via_float32),
            "float64 gradients are computed in float32", "core", _VJP, evidence="dtype=float64"),
    _broken("alpha_in_half", _with_backward(alpha_in_half),
            "alpha rounded to float16 (0.1 → 0.09998) for every dtype", "core", _VJP),
    _broken("rank3_first_sample_only", _with_backward(rank3_first_sample_only),
            "for rank ≥ 3 only the first sample's gradient is reversed", "core", _VJP,
            evidence=r"x: shape=\(\d+, \d+, \d+"),
    _broken("big_tensor_sign_dropped", _with_backward(big_tensor_sign_dropped),
            "tensors of more than 8 elements get +alpha·v", "core", _VJP,
            evidence=r"Mismatched elements: \d+ / (9|\d\d+) "),
    _broken("overflow_to_finite", _with_backward(overflow_to_finite),
            "nan_to_num in backward turns an overflowing -alpha·v into ±finfo.max", "core", _VJP,
            evidence="Expected -?inf|difference: inf"),
    _broken("clipped_gradient", _with_backward(clipped),
            "the reversed gradient is clipped to [-1, 1] (GradScaler sees scaled gradients)",
            "compat", "gradscaler_roundtrip", _VJP, "vjp_linear_in_v"),
    _broken("nan_to_num_forward", nan_to_num_forward, "forward maps NaN → 0 and ±inf → ±max",
            "core", "forward_identity"),
    _broken("clamp_to_half_range", clamp_to_half_range, "forward clamps to ±65504",
            "core", "forward_identity", evidence="65504|difference: 3\\.40"),
    _broken("detach_trick", detach_trick,
            "x.detach() + (x - x.detach())·-alpha: -0.0 → +0.0 and inf → NaN in forward",
            "core", "forward_identity", evidence="sign of zero|nan"),
    _broken("detach_trick_inexact", detach_trick_inexact,
            "x.detach()·(1 + alpha) - x·alpha: forward inexact (rounding, -0.0 → +0.0)", "core",
            "forward_identity"),
    _broken("skips_if_already_reversed", SkipsIfAlreadyReversed,
            "checks the input's grad_fn and skips a second reversal", "core", "composition"),
    _broken("warm_start_counter", WarmStart,
            "warm-start schedule advanced in forward: the first call has alpha 0", "core",
            "repeatable", _VJP),
    _broken("decays_in_forward", DecaysInForward, "alpha *= 0.9 after every forward", "core",
            "repeatable"),
    # hygiene
    _broken("class_alpha", ClassAlpha, "alpha kept on the class, shared by all instances",
            "hygiene", "instances_independent"),
    _broken("alpha_by_reference", AlphaByReference,
            "backward reads the alpha buffer by reference (alpha changed after forward leaks in)",
            "hygiene", "alpha_frozen_at_forward"),
    _broken("plain_tensor_alpha", PlainTensorAlpha, "alpha is a plain tensor attribute",
            "hygiene", "alpha_moved_by_to", "alpha_in_state_dict"),
    _broken("non_persistent_alpha", NonPersistentAlpha,
            "alpha is a non-persistent buffer, missing from state_dict", "hygiene",
            "alpha_in_state_dict"),
    _broken("parameter_alpha", ParameterAlpha, "alpha is an nn.Parameter", "hygiene",
            "no_trainable_parameters"),
    _broken("saves_input", saves_input, "saves the input for backward", "hygiene",
            "no_saved_activations"),
    _broken("sanitizes_in_place", sanitizes_in_place, "replaces NaN in the input in place",
            "hygiene", "input_not_mutated"),
    _broken("returns_view", returns_view, "Function forward returns x.view_as(x)", "hygiene",
            "output_safe_for_inplace"),
    _broken("forces_grad", forces_grad, "enable_grad inside forward records under no_grad",
            "hygiene", "no_grad_and_inference_mode"),
    _broken("contiguous_only", _with_backward(contiguous_only),
            "backward uses grad.view(-1): raises on non-contiguous upstream gradients",
            "hygiene", "noncontiguous_upstream_gradient"),
    _broken("logs_peak", LogsPeak, "forward takes abs().max(): raises on zero-size inputs",
            "hygiene", "zero_size_inputs"),
    _broken("times_one", times_one, "forward x * 1.0 turns integer inputs into float",
            "hygiene", "integer_inputs_handled_or_refused"),
    # compat
    _broken("old_style", OldStyle, "old-style Function without setup_context", "compat",
            "func_grad", "func_vjp", "func_vmap", "func_jvp"),
    _broken("no_vmap_rule", NoVmapRule, "no generate_vmap_rule / vmap staticmethod", "compat",
            "func_vmap"),
    _broken("wrong_jvp", WrongJvp, "custom jvp returns +alpha·t", "compat", "func_jvp"),
    _broken("once_differentiable", once_differentiable_backward,
            "backward marked @once_differentiable: no double backward", "compat",
            "double_backward"),
    _broken("with_jvp", WithJvp, "a custom jvp: fullgraph compilation refuses the Function",
            "compat", "compile_aot_eager", "compile_inductor"),
    _broken("float_alpha", FloatAlpha, "float alpha attribute: one compile per alpha value",
            "compat", "compile_aot_eager"),
    _broken("casts_to_float32", CastsToFloat32,
            "custom_fwd(cast_inputs=float32): under autocast the output dtype changes", "compat",
            "autocast", evidence="dtype torch.float32, expected torch.bfloat16"),
    _broken("custom_op_without_fake", custom_op_without_fake,
            "custom op registered without a fake implementation", "compat", "opcheck"),
    _broken("claims_torchscript", ClaimsTorchScript,
            "documents TorchScript support but calls Function.apply", "compat", "torchscript"),
    _broken("claims_export", ClaimsExport,
            "documents export support but branches on the data", "compat", "torch_export"),
)

CORRECT: tuple[Correct, ...] = (
    Correct("new_style", NewStyle, "new-style autograd.Function (setup_context, vmap rule)"),
    Correct("old_style_returns_input", OldStyleReturnsInput,
            "old-style autograd.Function returning its input"),
    Correct("custom_op", custom_op_reversal, "torch.library.custom_op with register_autograd"),
    Correct("hook", HookReversal, "nn.Module with a tensor hook on a copy"),
)

