"""A zoo of layers for the four non-reverse built-in contracts (``scale``, ``stop``, ``ste-round``,
``ste-sign``), written for grl-props' own tests: the contract counterpart of ``zoo.py``.

``CORRECT[contract]`` holds right layers of that contract in at least two styles; each must pass
every core property of its contract. ``BROKEN[contract]`` holds layers with one deliberate bug
each, the properties that must catch it and the evidence (a regex naming the bug), as in
``zoo.py`` (the same :class:`~zoo.Broken` and :class:`~zoo.Correct`).

The contracts share their implementation-style bugs (an old-style Function, no vmap rule, a cast
under autocast, a view returned, ...). Each is written once below as a *factory* taking a
:class:`Kernel`: the contract's right forward and backward (and the plausible wrong gradient a
copy-paste mistake gives, :attr:`Kernel.naive`), and instantiated per contract. The math bugs of
each contract (a reversed sign, ``grad * 0``, plain ``torch.round``, a sign without the clip) are
written out per contract.

Every layer is published at module level under its ``__qualname__`` (``old_style_ste_round``),
so that it can be loaded by name (``contract_zoo:old_style_ste_round``) in another process.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from zoo import Broken, Correct

__all__ = ["BROKEN", "CONTRACT_NAMES", "CORRECT", "KERNELS", "Broken", "Correct", "Kernel"]

CONTRACT_NAMES = ("scale", "stop", "ste-round", "ste-sign")

Alpha = Any  # a Python float, a 0-d tensor, or None for a contract without alpha


# ---------------------------------------------------------------------------------------------
# Kernels: one per contract.


@dataclass(frozen=True)
class Kernel:
    """A contract's right maps, as a layer computes them.

    ``forward(x)`` returns a new tensor; ``backward(x, grad, alpha)`` the right gradient (``x`` is
    ``None`` unless ``reads_input``; ``alpha`` is ``None`` unless ``takes_alpha``); ``naive`` the
    wrong gradient a plausible slip gives (a reversal's ``-alpha * grad`` for a multiplier, the
    gradient passed through for a stop, the true derivative of round, a sign without the clip).
    ``constant`` names the one number the layer holds (alpha, or the ste-sign clip threshold ...).
    """

    contract: str
    slug: str
    forward: Callable[[Tensor], Tensor]
    backward: Callable[[Tensor | None, Tensor, Alpha], Tensor]
    naive: Callable[[Tensor | None, Tensor, Alpha], Tensor]
    takes_alpha: bool = False
    reads_input: bool = False
    identity_forward: bool = True
    constant: str = "alpha"


def _copy(x: Tensor) -> Tensor:
    return x.clone()


def _times_alpha(x: Tensor | None, grad: Tensor, alpha: Alpha) -> Tensor:
    return grad * alpha


def _times_minus_alpha(x: Tensor | None, grad: Tensor, alpha: Alpha) -> Tensor:
    return grad * -alpha


def _zeros(x: Tensor | None, grad: Tensor, alpha: Alpha) -> Tensor:
    return torch.zeros_like(grad)


def _passed(x: Tensor | None, grad: Tensor, alpha: Alpha) -> Tensor:
    return grad


def _clipped_to_unit(x: Tensor | None, grad: Tensor, alpha: Alpha) -> Tensor:
    assert x is not None
    return torch.where(x.abs() <= 1, grad, torch.zeros_like(grad))


SCALE = Kernel("scale", "scale", _copy, _times_alpha, _times_minus_alpha, takes_alpha=True)
STOP = Kernel("stop", "stop", _copy, _zeros, _passed, constant="gate")
STE_ROUND = Kernel("ste-round", "ste_round", torch.round, _passed, _zeros, identity_forward=False,
                   constant="step")
STE_SIGN = Kernel("ste-sign", "ste_sign", torch.sign, _clipped_to_unit, _passed, reads_input=True,
                  identity_forward=False, constant="threshold")

KERNELS: dict[str, Kernel] = {k.contract: k for k in (SCALE, STOP, STE_ROUND, STE_SIGN)}


def _publish(obj: Any, name: str) -> Any:
    """Name ``obj`` ``name`` and bind it at module level, so that ``contract_zoo:name`` loads it."""
    obj.__name__ = obj.__qualname__ = name
    obj.__module__ = __name__
    globals()[name] = obj
    return obj


def _frozen(alpha: Alpha) -> Alpha:
    """Alpha as backward must see it: the value in force at forward (a copy of a tensor)."""
    return alpha.detach().clone() if isinstance(alpha, Tensor) else alpha


def _saved_input(ctx: Any, k: Kernel) -> Tensor | None:
    return ctx.saved_tensors[0] if k.reads_input else None


def _function(name: str, base: type = torch.autograd.Function, **methods: Any) -> Any:
    """A Function class called ``name`` (named at creation, so that torch's messages name it)."""
    namespace: dict[str, Any] = {key: staticmethod(m) for key, m in methods.items()}
    namespace["__module__"] = __name__
    namespace["__qualname__"] = name
    cls = type(name, (base,), namespace)
    globals()[name] = cls
    return cls


def _right(k: Kernel, name: str | None = None) -> Any:
    """The right new-style Function of ``k``: ``apply(x)``, or ``apply(x, alpha)`` for scale."""

    def forward(x: Tensor, *alpha: Alpha) -> Tensor:
        return k.forward(x)

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, *alpha = inputs
        ctx.alpha = _frozen(alpha[0]) if alpha else None
        ctx.n_alpha = len(alpha)
        if k.reads_input:
            ctx.save_for_backward(x)

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (k.backward(_saved_input(ctx, k), grad, ctx.alpha),) + (None,) * ctx.n_alpha

    cls = _function(name or f"_Right_{k.slug}", forward=forward, setup_context=setup_context,
                    backward=backward)
    cls.generate_vmap_rule = True
    return cls


def _layer_of(function: Any, k: Kernel, name: str,
              before: Callable[[Tensor], Tensor] | None = None) -> Any:
    """A function layer calling ``function.apply`` (``f(x, alpha)`` for scale, else ``f(x)``);
    ``before`` is applied to the input first (where a forward bug lives)."""
    prepare = before or (lambda x: x)
    if k.takes_alpha:
        def layer(x: Tensor, alpha: Alpha) -> Tensor:
            return function.apply(prepare(x), alpha)
    else:
        def layer(x: Tensor) -> Tensor:  # type: ignore[misc]
            return function.apply(prepare(x))
    return _publish(layer, name)


class _Holder(nn.Module):
    """Base of the module layers built by :func:`_module`: applies the right Function."""

    kernel: Kernel

    def apply_right(self, x: Tensor, function: Any | None = None) -> Tensor:
        function = function or _RIGHT[self.kernel.contract]
        if self.kernel.takes_alpha:
            return function.apply(x, self.alpha)  # type: ignore[no-any-return]
        return function.apply(x)  # type: ignore[no-any-return]


def _module(name: str, k: Kernel, forward: Callable[..., Tensor],
            init: Callable[..., None] | None = None, **attributes: Any) -> type[nn.Module]:
    """A module class called ``name``: built with an ``alpha`` argument under scale (held as a
    float64 buffer unless ``init`` holds it another way), with no argument otherwise."""

    if k.takes_alpha:
        def __init__(self: Any, alpha: float = 1.0) -> None:
            nn.Module.__init__(self)
            if init is not None:
                init(self, float(alpha))
            else:
                self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))
    else:
        def __init__(self: Any) -> None:  # type: ignore[misc]
            nn.Module.__init__(self)
            if init is not None:
                init(self, None)

    namespace = {"__init__": __init__, "forward": forward, "kernel": k, "__module__": __name__,
                 "__qualname__": name, **attributes}
    cls = type(name, (_Holder,), namespace)
    globals()[name] = cls
    return cls


_RIGHT: dict[str, Any] = {k.contract: _right(k) for k in KERNELS.values()}


# ---------------------------------------------------------------------------------------------
# Correct layers, two styles or more per contract.


class ScaleFunction(torch.autograd.Function):
    """New-style Function: forward without ctx, setup_context, generate_vmap_rule; alpha frozen."""

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
        return grad * ctx.alpha, None


class ScaleBuffer(nn.Module):
    """A module holding alpha as a float64 buffer, applying :class:`ScaleFunction`."""

    alpha: Tensor

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        return ScaleFunction.apply(x, self.alpha)


class ScaleHook(ScaleBuffer):
    """A copy whose gradient is scaled by a tensor hook."""

    def forward(self, x: Tensor) -> Tensor:
        out = x.clone()
        if out.requires_grad:
            alpha = float(self.alpha)
            out.register_hook(lambda grad: grad * alpha)
        return out


def stop_detach_clone(x: Tensor) -> Tensor:
    """``x.detach().clone()``: no gradient at all (a detached output is the zero gradient)."""
    return x.detach().clone()


class StopFunction(torch.autograd.Function):
    """New-style Function returning a copy forward and zeros backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return torch.zeros_like(grad)


class StopModule(nn.Module):
    """An ``nn.Module`` calling :class:`StopFunction`."""

    def forward(self, x: Tensor) -> Tensor:
        return StopFunction.apply(x)


def round_detach_trick(x: Tensor) -> Tensor:
    """The one-liner ``x + (torch.round(x) - x).detach()`` (exact: ``round(x) - x`` is)."""
    return x + (torch.round(x) - x).detach()


class RoundFunction(torch.autograd.Function):
    """New-style Function: ``torch.round`` forward, the gradient itself backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.round(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


def sign_clamp_trick(x: Tensor) -> Tensor:
    """The one-liner ``c + (sign(x) - c).detach()`` with ``c = clamp(x, -1, 1)``: clamp's gradient
    is 1 on the closed interval [-1, 1] (unlike hardtanh's), so the gradient is ``v·1{|x| ≤ 1}``."""
    clipped = torch.clamp(x, -1, 1)
    return clipped + (torch.sign(x) - clipped).detach()


class SignFunction(torch.autograd.Function):
    """New-style Function saving x: ``torch.sign`` forward, ``grad`` where ``|x| <= 1`` backward."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.sign(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.where(x.abs() <= 1, grad, torch.zeros_like(grad))


CORRECT: dict[str, tuple[Correct, ...]] = {
    "scale": (
        Correct("scale_function", ScaleFunction,
                "new-style autograd.Function (setup_context, generate_vmap_rule)"),
        Correct("scale_buffer", ScaleBuffer, "nn.Module class, alpha a float64 buffer"),
        Correct("scale_hook", ScaleHook, "nn.Module class with a tensor hook on a copy"),
    ),
    "stop": (
        Correct("stop_detach_clone", stop_detach_clone, "function x.detach().clone()"),
        Correct("stop_function", StopFunction, "new-style autograd.Function returning zeros"),
        Correct("stop_module_instance", StopModule(), "nn.Module instance calling a Function"),
    ),
    "ste-round": (
        Correct("round_detach_trick", round_detach_trick,
                "one-liner x + (torch.round(x) - x).detach()"),
        Correct("round_function", RoundFunction, "new-style autograd.Function, identity backward"),
    ),
    "ste-sign": (
        Correct("sign_clamp_trick", sign_clamp_trick,
                "one-liner clamp(x, -1, 1) + (sign(x) - clamp(x, -1, 1)).detach()"),
        Correct("sign_function", SignFunction, "new-style autograd.Function saving x"),
    ),
}


# ---------------------------------------------------------------------------------------------
# The registry helpers and the evidence shared by several entries.


def _broken(name: str, layer: Any, bug: str, tier: str, *caught_by: str,
            evidence: str | Mapping[str, str], raises: bool = False) -> Broken:
    return Broken(name, layer, bug, tier, frozenset(caught_by), evidence, raises)


_VJP = "vjp_matches_contract"
#: How the layer's gradient relates to v, as the properties report it where the contract's VJP
#: is a gain: "gradient ÷ v on 7 ordinary elements: +0.3 (expected -0.3)".
_RATIO = r"÷ [^\n]* on \d+ ordinary elements?: "


# ---------------------------------------------------------------------------------------------
# Implementation-style bugs, written once per kernel.


def old_style(k: Kernel) -> Broken:
    """Old-style Function (forward takes ctx, no setup_context): torch.func refuses it."""

    def forward(ctx: Any, x: Tensor, *alpha: Alpha) -> Tensor:
        ctx.alpha = _frozen(alpha[0]) if alpha else None
        ctx.n_alpha = len(alpha)
        if k.reads_input:
            ctx.save_for_backward(x)
        return k.forward(x)

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (k.backward(_saved_input(ctx, k), grad, ctx.alpha),) + (None,) * ctx.n_alpha

    name = f"old_style_{k.slug}"
    function = _function(f"OldStyle_{k.slug}", forward=forward, backward=backward)
    return _broken(name, _layer_of(function, k, name), "old-style Function without setup_context",
                   "compat", "func_grad", "func_vjp", "func_vmap", "func_jvp",
                   evidence=r"raised RuntimeError: In order to use an autograd\.Function with "
                            r"functorch transforms .* it must override the setup_context "
                            r"staticmethod")


def no_vmap_rule(k: Kernel) -> Broken:
    """A new-style Function without generate_vmap_rule or a vmap staticmethod."""
    right = _RIGHT[k.contract]
    cls_name = f"NoVmapRule_{k.slug}"
    function = _function(cls_name, forward=right.forward, setup_context=right.setup_context,
                         backward=right.backward)
    name = f"no_vmap_rule_{k.slug}"
    return _broken(name, _layer_of(function, k, name), "no generate_vmap_rule / vmap staticmethod",
                   "compat", "func_vmap",
                   evidence=rf"You tried to vmap over {cls_name}, but it does not have vmap support")


_WRONG_TANGENT = {
    "scale": r"tangent ÷ t on \d+ ordinary elements?: -(\S+) \(expected \+\1\)",
    "stop": r"tangent ÷ t on \d+ ordinary elements?: \+1 \(expected \+0\)",
    "ste-round": r"tangent ÷ t on \d+ ordinary elements?: [+-]0 \(expected \+1\)",
    # no gain: the first element where |x| > 1, whose tangent the jvp passes instead of zeroing
    "ste-sign": r"torch\.func\.jvp's tangent is not as expected[^\n]*\n[^\n]*expected 0\.0, got "
                r"(?!0\.0)",
}


def wrong_jvp(k: Kernel) -> Broken:
    """A custom ``jvp`` returning the naive tangent (the reversal's, the identity's, round's true
    derivative, the unclipped one) while backward is right."""
    right = _RIGHT[k.contract]

    def jvp(ctx: Any, x_tangent: Tensor, *alpha_tangent: Any) -> Tensor:
        return k.naive(None, x_tangent, ctx.alpha)

    cls_name = f"WrongJvp_{k.slug}"
    function = _function(cls_name, base=right, jvp=jvp)
    name = f"wrong_jvp_{k.slug}"
    return _broken(name, _layer_of(function, k, name), "custom jvp returns the naive tangent",
                   "compat", "func_jvp", evidence=_WRONG_TANGENT[k.contract])


def nan_guard(k: Kernel) -> Broken:
    """Warns when the activation holds NaN: a branch on the data, which fullgraph compilation and
    torch.export refuse (it claims torch.export support)."""

    def forward(self: Any, x: Tensor) -> Tensor:
        if torch.isnan(x).any():
            warnings.warn("NaN in the activation", stacklevel=2)
        return self.apply_right(x)

    name = f"nan_guard_{k.slug}"
    layer = _module(name, k, forward, __grl_props_claims__=("torch_export",))
    compile_evidence = r"fullgraph=True\) raised Unsupported: Data-dependent branching"
    return _broken(name, layer, "branches on the data (a NaN check) in forward", "compat",
                   "compile_aot_eager", "compile_inductor", "torch_export",
                   evidence={"compile_aot_eager": compile_evidence,
                             "compile_inductor": compile_evidence,
                             "torch_export": r"torch\.export\.export raised "
                                             r"GuardOnDataDependentSymNode: Could not guard on "
                                             r"data-dependent expression"})


def _casts(k: Kernel, device: str) -> Any:
    def forward(ctx: Any, x: Tensor, *alpha: Alpha) -> Tensor:
        ctx.alpha = _frozen(alpha[0]) if alpha else None
        ctx.n_alpha = len(alpha)
        if k.reads_input:
            ctx.save_for_backward(x)
        return k.forward(x)

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (k.backward(_saved_input(ctx, k), grad, ctx.alpha),) + (None,) * ctx.n_alpha

    return _function(f"CastsToFloat32_{device}_{k.slug}",
                     forward=torch.amp.custom_fwd(device_type=device, cast_inputs=torch.float32)(forward),
                     backward=torch.amp.custom_bwd(device_type=device)(backward))


def casts_to_float32(k: Kernel) -> Broken:
    """``custom_fwd(cast_inputs=float32)``: under CPU autocast a bf16 activation comes back float32."""
    name = f"casts_to_float32_{k.slug}"
    return _broken(name, _layer_of(_casts(k, "cpu"), k, name),
                   "custom_fwd(cast_inputs=float32): under autocast the output dtype changes",
                   "compat", "autocast", evidence=r"dtype torch\.float32, expected torch\.bfloat16")


def casts_to_float32_on_cuda(k: Kernel) -> Broken:
    """``custom_fwd(device_type="cuda", cast_inputs=float32)``: the same under CUDA autocast."""
    name = f"casts_to_float32_on_cuda_{k.slug}"
    return _broken(name, _layer_of(_casts(k, "cuda"), k, name),
                   "custom_fwd(device_type='cuda', cast_inputs=float32): under CUDA autocast the "
                   "output dtype changes", "compat", "autocast_cuda",
                   evidence=r"dtype torch\.float32, expected torch\.float16")


def _backward_bug(k: Kernel, cls_name: str,
                  rule: Callable[[Tensor | None, Tensor, Alpha], Tensor]) -> Any:
    """The right Function of ``k`` with backward ``rule(x, grad, alpha)``."""

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (rule(_saved_input(ctx, k), grad, ctx.alpha),) + (None,) * ctx.n_alpha

    return _function(cls_name, base=_RIGHT[k.contract], backward=backward)


_CLIPPED_VJP = {
    # 1/600 at v = -600 (the typical case), or the scaled-down ratio of a larger gradient
    "scale": _RATIO + r"ranges from \+\S+ to \+\S+ \(expected \+0\.3\)",
    "ste-round": _RATIO + r"ranges from \+\S+ to \+1 \(expected \+1\)",
    "ste-sign": r"VJP\(v\) is not as expected[^\n]*\n[^\n]*: expected (-?\d\S*), got -?1\.0\n",
}
_CLIPPED_SCALER = {
    # the gradient is capped at magnitude 1 while the scaled one is 2**16 times larger
    "scale": _RATIO + r"ranges from \+\d\.\d+e-05 to \+\d\.\d+e-05",
    "ste-round": _RATIO + r"ranges from \+\d\.\d+e-05 to \+\d\.\d+e-05",
    "ste-sign": r"the unscaled gradient is not as expected[^\n]*\n[^\n]*expected -?\d\S*, got "
                r"-?\d\.\d+e-0[56]\n",
}


def clipped_gradient(k: Kernel) -> Broken:
    """Clips the right gradient to [-1, 1] inside the layer (GradScaler sees scaled gradients)."""
    function = _backward_bug(k, f"Clipped_{k.slug}",
                             lambda x, g, a: k.backward(x, g, a).clamp(-1.0, 1.0))
    name = f"clipped_gradient_{k.slug}"
    return _broken(name, _layer_of(function, k, name),
                   "the gradient is clipped to [-1, 1] inside the layer", "compat",
                   "gradscaler_roundtrip", "vjp_linear_in_v", _VJP,
                   evidence={"gradscaler_roundtrip": _CLIPPED_SCALER[k.contract],
                             "vjp_linear_in_v": r"but got -?1\.0\.",
                             _VJP: _CLIPPED_VJP[k.contract]})


def once_differentiable(k: Kernel) -> Broken:
    """Backward marked ``@once_differentiable``: double backward loses the gradient."""

    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        return (k.backward(_saved_input(ctx, k), grad, ctx.alpha),) + (None,) * ctx.n_alpha

    function = _function(f"OnceDifferentiable_{k.slug}", base=_RIGHT[k.contract],
                         backward=torch.autograd.function.once_differentiable(backward))
    name = f"once_differentiable_{k.slug}"
    return _broken(name, _layer_of(function, k, name),
                   "backward marked @once_differentiable: no double backward", "compat",
                   "double_backward",
                   evidence=r"the derivative of VJP\(v\) with respect to v is None[^\n]*not "
                            r"differentiable")


def custom_op_without_fake(k: Kernel) -> Broken:
    """A ``torch.library.custom_op`` with ``register_autograd`` but no fake implementation."""
    qualified = f"grl_props_contract_zoo::{k.slug}_without_fake"
    if k.takes_alpha:
        def op(x: Tensor, alpha: float) -> Tensor:
            return k.forward(x)
    else:
        def op(x: Tensor) -> Tensor:  # type: ignore[misc]
            return k.forward(x)
    custom = torch.library.custom_op(qualified, mutates_args=())(op)

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = inputs[1] if k.takes_alpha else None
        if k.reads_input:
            ctx.save_for_backward(inputs[0])

    def backward(ctx: Any, grad: Tensor) -> Any:
        got = k.backward(_saved_input(ctx, k), grad, ctx.alpha)
        return (got, None) if k.takes_alpha else got

    custom.register_autograd(backward, setup_context=setup_context)
    name = f"custom_op_without_fake_{k.slug}"
    if k.takes_alpha:
        def layer(x: Tensor, alpha: Alpha) -> Tensor:
            return custom(x, float(alpha))
    else:
        def layer(x: Tensor) -> Tensor:  # type: ignore[misc]
            return custom(x)
    return _broken(name, _publish(layer, name), "custom op registered without a fake implementation",
                   "compat", "opcheck",
                   evidence=r"test_faketensor failed with There was no fake impl registered")


def claims_torchscript(k: Kernel) -> Broken:
    """Claims TorchScript support, but applies its gradient with a tensor hook: a lambda."""

    def forward(self: Any, x: Tensor) -> Tensor:
        out = x.clone() if k.identity_forward else x + (k.forward(x) - x).detach()
        if out.requires_grad:
            alpha = float(self.alpha) if k.takes_alpha else None
            saved = x.detach()
            out.register_hook(lambda grad: k.backward(saved, grad, alpha))
        return out

    name = f"claims_torchscript_{k.slug}"
    layer = _module(name, k, forward, __grl_props_claims__=("torchscript",))
    return _broken(name, layer,
                   "claims TorchScript support but uses a hook lambda it cannot compile", "compat",
                   "torchscript",
                   evidence=r"torch\.jit\.script raised UnsupportedNodeError: Lambda aren't supported")


def _hold_parameter(self: Any, alpha: float | None) -> None:
    value = 1.0 if alpha is None else alpha
    setattr(self, self.kernel.constant, nn.Parameter(torch.tensor(value, dtype=torch.float64)))


def parameter_constant(k: Kernel) -> Broken:
    """Holds its constant (alpha, the gate, the step, the clip threshold) as an nn.Parameter."""

    def forward(self: Any, x: Tensor) -> Tensor:
        if k.takes_alpha:
            return _RIGHT[k.contract].apply(x, self.alpha.detach())
        return _RIGHT[k.contract].apply(x)

    name = f"parameter_{k.constant}_{k.slug}"
    return _broken(name, _module(name, k, forward, init=_hold_parameter),
                   f"{k.constant} is an nn.Parameter", "hygiene", "no_trainable_parameters",
                   evidence=rf"the layer has parameters \['{k.constant}'\]")


def _hold_plain_tensor(self: Any, alpha: float | None) -> None:
    value = 1.0 if alpha is None else alpha
    setattr(self, self.kernel.constant, torch.tensor(value, dtype=torch.float64))


def plain_tensor_constant(k: Kernel) -> Broken:
    """Holds its constant as a plain tensor attribute: not a buffer, so .to() and state_dict miss it."""

    def forward(self: Any, x: Tensor) -> Tensor:
        if k.takes_alpha:
            return _RIGHT[k.contract].apply(x, self.alpha)
        return _RIGHT[k.contract].apply(x)

    name = f"plain_tensor_{k.constant}_{k.slug}"
    caught = {"alpha_moved_by_to": rf"tensor attribute\(s\) {k.constant} are not registered buffers"}
    if k.takes_alpha:
        caught["alpha_in_state_dict"] = r"alpha is not in state_dict \(keys: \[\]\)"
    return _broken(name, _module(name, k, forward, init=_hold_plain_tensor),
                   f"{k.constant} is a plain tensor attribute", "hygiene", *caught,
                   evidence=caught)


def saves_input(k: Kernel) -> Broken:
    """Saves the activation for backward, which does not read it."""

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, *alpha = inputs
        ctx.alpha = _frozen(alpha[0]) if alpha else None
        ctx.n_alpha = len(alpha)
        ctx.save_for_backward(x)  # kept alive for nothing

    function = _function(f"SavesInput_{k.slug}", base=_RIGHT[k.contract],
                         setup_context=setup_context)
    name = f"saves_input_{k.slug}"
    return _broken(name, _layer_of(function, k, name), "saves the input for backward", "hygiene",
                   "no_saved_activations",
                   evidence=r"saved tensor\(s\) of shape \[\([\d, ]+\)\] for backward")


def _nan_to_num_in_place(x: Tensor) -> Tensor:
    with torch.no_grad():
        x.detach().nan_to_num_()
    return x


def sanitizes_in_place(k: Kernel) -> Broken:
    """Replaces NaN in the caller's tensor, in place (the input's version counter moves)."""
    name = f"sanitizes_in_place_{k.slug}"
    return _broken(name, _layer_of(_RIGHT[k.contract], k, name, before=_nan_to_num_in_place),
                   "replaces NaN in the input in place", "hygiene", "input_not_mutated",
                   evidence=r"version counter moved from \d+ to \d+")


def forces_grad(k: Kernel) -> Broken:
    """Turns grad mode back on inside forward, so it records a graph under no_grad."""
    right = _RIGHT[k.contract]
    if k.takes_alpha:
        def layer(x: Tensor, alpha: Alpha) -> Tensor:
            with torch.enable_grad():
                return right.apply(x, alpha)
    else:
        def layer(x: Tensor) -> Tensor:  # type: ignore[misc]
            with torch.enable_grad():
                return right.apply(x)
    name = f"forces_grad_{k.slug}"
    return _broken(name, _publish(layer, name), "enable_grad inside forward records under no_grad",
                   "hygiene", "no_grad_and_inference_mode",
                   evidence=r"the output under no_grad records a graph")


def contiguous_only(k: Kernel) -> Broken:
    """Backward flattens the gradient with ``grad.view(-1)``: raises on non-contiguous ones."""

    def rule(x: Tensor | None, g: Tensor, a: Alpha) -> Tensor:
        flat = k.backward(None if x is None else x.reshape(-1), g.view(-1), a)
        return flat.view(g.shape)

    function = _backward_bug(k, f"ContiguousOnly_{k.slug}", rule)
    name = f"contiguous_only_{k.slug}"
    return _broken(name, _layer_of(function, k, name),
                   "backward uses grad.view(-1): raises on non-contiguous upstream gradients",
                   "hygiene", "noncontiguous_upstream_gradient", raises=True,
                   evidence=r"the layer raised RuntimeError: view size is not compatible with "
                            r"input tensor's size and stride")


def logs_peak(k: Kernel) -> Broken:
    """Records the activation's peak magnitude: ``max()`` of an empty tensor raises."""

    def forward(self: Any, x: Tensor) -> Tensor:
        self.peak = float(x.detach().abs().max())
        return self.apply_right(x)

    name = f"logs_peak_{k.slug}"
    return _broken(name, _module(name, k, forward),
                   "forward takes abs().max(): raises on zero-size inputs", "hygiene",
                   "zero_size_inputs", raises=True,
                   evidence=r"the layer raised RuntimeError: max\(\): Expected reduction dim[^\n]*\n"
                            r"Counterexample:[^\n]*\n\s+shape=\(([\d, ]*0[\d, ]*)\)")


def _times_one(x: Tensor) -> Tensor:
    return x * 1.0  # int and bool become float


def times_one(k: Kernel) -> Broken:
    """Forward on ``x * 1.0``: integer and bool inputs come back as float."""
    name = f"times_one_{k.slug}"
    return _broken(name, _layer_of(_RIGHT[k.contract], k, name, before=_times_one),
                   "forward x * 1.0 turns integer inputs into float", "hygiene",
                   "integer_inputs_handled_or_refused",
                   evidence=r"has dtype torch\.float32, expected torch\.(int64|int32|uint8|bool)")


def warm_up_counter(k: Kernel) -> Broken:
    """A warm-up counted in forward: the first call's backward is the naive one (alpha still 0 in
    a DANN schedule, the gradient not yet stopped, round's own gradient, no clip yet)."""

    def warm(x: Tensor | None, g: Tensor, a: Alpha) -> Tensor:
        return torch.zeros_like(g) if k.contract == "scale" else k.naive(x, g, a)

    warm_function = _backward_bug(k, f"WarmUp_{k.slug}", warm)

    def forward(self: Any, x: Tensor) -> Tensor:
        self.calls = getattr(self, "calls", 0) + 1
        return self.apply_right(x, warm_function if self.calls == 1 else None)

    name = f"warm_up_counter_{k.slug}"
    return _broken(name, _module(name, k, forward),
                   "a warm-up counted in forward: the first call's gradient differs", "core",
                   "repeatable", evidence=r"call 2's gradient \(vs call 1's\) is not as expected")


def cpu_tensor_in_backward(k: Kernel) -> Broken:
    """Backward multiplies by a unit tensor of shape [1] built on the CPU: a device clash on CUDA."""
    function = _backward_bug(
        k, f"CpuTensorInBackward_{k.slug}",
        lambda x, g, a: k.backward(x, g, a) * torch.ones(1, dtype=g.dtype))
    name = f"cpu_tensor_in_backward_{k.slug}"
    return _broken(name, _layer_of(function, k, name),
                   "backward builds a CPU tensor of shape [1]: a device clash on CUDA", "hygiene",
                   "runs_after_to_cuda",
                   evidence=r"on cuda the layer raised: Expected all tensors to be on the same device")


def nan_to_num_forward(k: Kernel) -> Broken:
    """Sanitizes the activation before the layer: NaN → 0, ±inf → ±finfo.max."""
    name = f"nan_to_num_forward_{k.slug}"
    return _broken(name, _layer_of(_RIGHT[k.contract], k, name, before=torch.nan_to_num),
                   "forward maps NaN → 0 and ±inf → ±max", "core", "forward_identity",
                   evidence=r"non-finite elements? differs? \(e\.g\. (-?inf → -?\d\.\d+e\+\d+|nan → "
                            r"0\.0)")


def returns_view(k: Kernel) -> Broken:
    """New-style Function whose forward returns ``x.view_as(x)`` (identity-forward contracts)."""

    def forward(x: Tensor, *alpha: Alpha) -> Tensor:
        return x.view_as(x)  # a view made inside a Function: in-place ops on it raise

    cls_name = f"ReturnsView_{k.slug}"
    function = _function(cls_name, base=_RIGHT[k.contract], forward=forward)
    name = f"returns_view_{k.slug}"
    return _broken(name, _layer_of(function, k, name), "Function forward returns x.view_as(x)",
                   "hygiene", "output_safe_for_inplace",
                   evidence=rf"Output 0 of {cls_name} is a view and is being modified inplace")


def data_hack(k: Kernel) -> Broken:
    """The old straight-through hack ``x.data = f(x.data); return x`` (mapped-forward contracts):
    the gradient passes as the identity, but the output is the caller's tensor itself."""

    def layer(x: Tensor) -> Tensor:
        x.data = k.forward(x.data)
        return x

    name = f"data_hack_{k.slug}"
    return _broken(name, _publish(layer, name), "x.data = f(x.data); return x: the input is "
                   "overwritten and returned", "hygiene", "output_safe_for_inplace",
                   "input_not_mutated",
                   evidence={"output_safe_for_inplace": r"the input after an in-place op on the "
                                                        r"output differs from the input",
                             "input_not_mutated": r"the input after forward and backward differs "
                                                  r"from the input"})


#: The factories, with the contracts each applies to (``None``: every contract).
FACTORIES: tuple[tuple[Callable[[Kernel], Broken], frozenset[str] | None], ...] = (
    (old_style, None),
    (no_vmap_rule, None),
    (wrong_jvp, None),
    (nan_guard, None),
    (casts_to_float32, None),
    (casts_to_float32_on_cuda, None),
    (clipped_gradient, frozenset({"scale", "ste-round", "ste-sign"})),  # a stop's zeros stay zeros
    (once_differentiable, frozenset({"scale", "ste-round", "ste-sign"})),  # stop: no double backward
    (custom_op_without_fake, None),
    (claims_torchscript, None),
    (parameter_constant, None),
    (plain_tensor_constant, None),
    (saves_input, frozenset({"scale", "stop", "ste-round"})),  # ste-sign's VJP reads x
    (sanitizes_in_place, None),
    (forces_grad, None),
    (contiguous_only, None),
    (logs_peak, None),
    (times_one, None),
    (warm_up_counter, None),
    (cpu_tensor_in_backward, None),
    # ste-round and ste-sign promise their maps on finite values only: nan_to_num is no bug there
    (nan_to_num_forward, frozenset({"scale", "stop"})),
    (returns_view, frozenset({"scale"})),
    (data_hack, frozenset({"ste-round", "ste-sign"})),
)


def _instances(contract: str) -> tuple[Broken, ...]:
    k = KERNELS[contract]
    return tuple(make(k) for make, only in FACTORIES if only is None or contract in only)


# ---------------------------------------------------------------------------------------------
# scale: the math bugs, and the alpha-state bugs of a module


def reversed_sign(g: Tensor, a: Alpha) -> Tensor:
    return g * -a  # copied from a gradient reversal layer


def alpha_ignored(g: Tensor, a: Alpha) -> Tensor:
    return g


def _scale_with_backward(rule: Callable[[Tensor, Alpha], Tensor]) -> Any:
    name = f"scale_{rule.__name__}"
    function = _backward_bug(SCALE, f"Scale_{rule.__name__}", lambda x, g, a: rule(g, a))
    return _layer_of(function, SCALE, name)


class _ScaleByReference(torch.autograd.Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.alpha = inputs[1]  # the buffer itself, not a copy

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.alpha, None


class ScaleAlphaByReference(ScaleBuffer):
    """Backward reads the alpha buffer when it runs, not the value in force at forward."""

    def forward(self, x: Tensor) -> Tensor:
        return _ScaleByReference.apply(x, self.alpha)


class ScaleNonPersistentAlpha(nn.Module):
    """Alpha as a non-persistent buffer: moved by .to(), but not saved in state_dict."""

    alpha: Tensor

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.tensor(float(alpha), dtype=torch.float64),
                             persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return ScaleFunction.apply(x, self.alpha)


class ScaleClassAlpha(nn.Module):
    """Keeps alpha on the class: every instance shares the last one built."""

    alpha = 1.0

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        ScaleClassAlpha.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return ScaleFunction.apply(x, ScaleClassAlpha.alpha)


class ScaleFloatAlpha(nn.Module):
    """Alpha as a Python float attribute: the compiler guards on its value and recompiles."""

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return ScaleFunction.apply(x, self.alpha)


class ScaleSkipsIfAlreadyScaled(ScaleBuffer):
    """Returns inputs that already come out of a ScaleFunction unchanged (an "idempotence" guard).

    Written for scale only: stop, round and sign are idempotent (round(round(x)) = round(x), and
    the second layer's gradient passes everything: |sign(x)| <= 1), so skipping a second one
    changes nothing there; ``composition`` is proven for them by their math bugs instead.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.grad_fn is not None and "ScaleFunction" in type(x.grad_fn).__name__:
            return x
        return ScaleFunction.apply(x, self.alpha)


_SCALE_BROKEN: tuple[Broken, ...] = (
    _broken("scale_reversed_sign", _scale_with_backward(reversed_sign),
            "backward returns -alpha·v (copied from a reversal)", "core", _VJP, "model_gradients",
            evidence=_RATIO + r"-(\S+) \(expected \+\1\)"),
    _broken("scale_alpha_ignored", _scale_with_backward(alpha_ignored),
            "backward returns v whatever alpha", "core", _VJP, "vjp_linear_in_alpha",
            "zero_alpha_gives_zero_gradient",
            evidence=_RATIO + r"\+1 \(expected (?!\+1\))"),  # +1 where another alpha is due
    _broken("scale_alpha_by_reference", ScaleAlphaByReference,
            "backward reads the alpha buffer by reference", "hygiene", "alpha_frozen_at_forward",
            evidence=r"changed to 1\.75 .* before backward, and backward used alpha=1\.75"),
    _broken("scale_non_persistent_alpha", ScaleNonPersistentAlpha,
            "alpha is a non-persistent buffer, missing from state_dict", "hygiene",
            "alpha_in_state_dict", evidence=r"alpha is not in state_dict \(keys: \[\]\)"),
    _broken("scale_class_alpha", ScaleClassAlpha, "alpha kept on the class, shared by all instances",
            "hygiene", "instances_independent",
            evidence=r"the first of two instances \(alphas 0\.375 and 1\.75\) applies alpha=1\.75"),
    _broken("scale_float_alpha", ScaleFloatAlpha,
            "float alpha attribute: one compile per alpha value", "compat", "compile_aot_eager",
            "compile_inductor",
            evidence=r"compiled [3-9] graphs for 5 alpha values .* alpha is specialized"),
    _broken("scale_skips_if_already_scaled", ScaleSkipsIfAlreadyScaled,
            "checks the input's grad_fn and skips a second multiplier", "core", "composition",
            # scaled once: alpha1 where alpha1·alpha2 is due
            evidence=_RATIO + r"(\S+) \(expected (?!\1\))"),
)


# ---------------------------------------------------------------------------------------------
# stop: the math bugs


def stop_times_zero(x: Tensor) -> Tensor:
    """Multiplies the gradient by zero: NaN·0 and inf·0 are NaN, where a stop promises 0."""
    return _StopTimesZero.apply(x)


def stop_passes_gradient(x: Tensor) -> Tensor:
    """A copy forward whose backward returns the gradient unchanged (no stop at all)."""
    return _StopPasses.apply(x)


def stop_large_only(x: Tensor) -> Tensor:
    """Zeroes only gradients above 1 in magnitude (a clip-to-zero taken for a stop)."""
    return _StopLargeOnly.apply(x)


def stop_detach_alias(x: Tensor) -> Tensor:
    """``x.detach()``: the zero gradient, but the output aliases the input."""
    return x.detach()


_StopTimesZero = _backward_bug(STOP, "_StopTimesZero", lambda x, g, a: g * 0)
_StopPasses = _backward_bug(STOP, "_StopPasses", lambda x, g, a: g)
_StopLargeOnly = _backward_bug(STOP, "_StopLargeOnly",
                               lambda x, g, a: torch.where(g.abs() > 1, torch.zeros_like(g), g))

_STOP_BROKEN: tuple[Broken, ...] = (
    _broken("stop_times_zero", stop_times_zero, "backward returns grad * 0: NaN·0 = NaN", "core",
            _VJP, evidence=r"non-finite elements? differs? \(e\.g\. 0\.0 → nan"),
    _broken("stop_passes_gradient", stop_passes_gradient, "backward passes the gradient through",
            "core", _VJP, "model_gradients", "gradscaler_roundtrip", "composition",
            evidence=_RATIO + r"\+1 \(expected \+0\)"),
    _broken("stop_large_only", stop_large_only,
            "backward zeroes only gradients larger than 1 in magnitude", "core", "vjp_linear_in_v",
            _VJP, evidence={"vjp_linear_in_v": r"VJP\(\S+·v1 \+ \S+·v2\) vs",
                            _VJP: _RATIO + r"ranges from \+0 to \+1 \(expected \+0\)"}),
    _broken("stop_detach_alias", stop_detach_alias, "x.detach(): the output aliases the input",
            "hygiene", "output_safe_for_inplace",
            evidence=r"the input after an in-place op on the output differs from the input"),
)


# ---------------------------------------------------------------------------------------------
# ste-round: the math bugs


def round_plain(x: Tensor) -> Tensor:
    """Plain ``torch.round``: round's own gradient, zero everywhere."""
    return torch.round(x)


def round_floor_half_up(x: Tensor) -> Tensor:
    """``floor(x + 0.5)`` with the straight-through trick: ties go up (0.5 → 1, 2.5 → 3, -0.5 → 0),
    not to even; and ``x + 0.5`` itself rounds (0.49999999999999994 → 1)."""
    return x + (torch.floor(x + 0.5) - x).detach()


_ROUND_BROKEN: tuple[Broken, ...] = (
    _broken("round_plain", round_plain, "plain torch.round: zero gradient", "core", _VJP,
            "model_gradients", "composition", evidence=_RATIO + r"[+-]0 \(expected \+1\)"),
    _broken("round_floor_half_up", round_floor_half_up, "floor(x + 0.5): ties rounded up",
            "core", "forward_matches_contract",
            # a tie (or a value just below one) that went up where half to even goes down
            evidence=r"expected round\(x\), half to even\)[^\n]*\n[^\n]*x = (-?\d+\.5|0\.49\d*): "
                     r"expected (-?\d+\.0), got (?!\2)"),
)


# ---------------------------------------------------------------------------------------------
# ste-sign: the math bugs


def sign_unclipped(x: Tensor) -> Tensor:
    """``sign(x)`` forward, the identity gradient everywhere (no ``|x| <= 1`` clip)."""
    return torch.sign(x).detach() + (x - x.detach())


def sign_where(x: Tensor) -> Tensor:
    """``where(x >= 0, 1, -1)`` with the clamp trick: sign(0) comes out 1, not 0."""
    clipped = torch.clamp(x, -1, 1)
    return clipped + (torch.where(x >= 0, 1.0, -1.0).to(x.dtype) - clipped).detach()


def sign_hardtanh(x: Tensor) -> Tensor:
    """The clip by ``hardtanh``, whose gradient is 0 at |x| = 1 exactly (clamp's is 1 there)."""
    clipped = nn.functional.hardtanh(x)
    return clipped + (torch.sign(x) - clipped).detach()


_BEYOND_ONE = r"x = -?(\d\d+|[2-9]|1\.0*[1-9])\S*, v = [^\n]*: expected 0\.0, got (?!0\.0)"

_SIGN_BROKEN: tuple[Broken, ...] = (
    _broken("sign_unclipped", sign_unclipped, "no |x| <= 1 clip: the gradient passes everywhere",
            "core", _VJP, "composition", "model_gradients",
            # an element where |x| > 1 (the encoder's output, in a model): v, where 0 is due
            evidence={_VJP: _BEYOND_ONE, "composition": _BEYOND_ONE,
                      "model_gradients": r"encoder\.(weight|bias)'s gradient is not as expected[^\n]*"
                                         r"\n[^\n]*expected \[*0\.0(, 0\.0)*\]*, got \[*-?(?!0\.0)"}),
    _broken("sign_where", sign_where, "where(x >= 0, 1, -1): sign(0) is 1", "core",
            "forward_matches_contract",
            evidence=r"expected sign\(x\) \(sign\(0\) = 0\)\)[^\n]*\n[^\n]*x = -?0\.0: expected "
                     r"0\.0, got 1\.0"),
    _broken("sign_hardtanh", sign_hardtanh, "clip by hardtanh: gradient 0 at |x| = 1", "core", _VJP,
            evidence=r"x = -?1\.0, v = (?!0\.0)[^\n]*: expected (?!0\.0)\S+, got 0\.0"),
)


BROKEN: dict[str, tuple[Broken, ...]] = {
    "scale": _instances("scale") + _SCALE_BROKEN,
    "stop": _instances("stop") + _STOP_BROKEN,
    "ste-round": _instances("ste-round") + _ROUND_BROKEN,
    "ste-sign": _instances("ste-sign") + _SIGN_BROKEN,
}

