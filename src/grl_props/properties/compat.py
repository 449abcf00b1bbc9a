"""Compatibility properties: torch.func, torch.compile, AMP, double backward, custom ops, export."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from grl_props.adapters import BoundFunction, LayerUnderTest, set_alpha
from grl_props.compare import assert_values_close, require_tensor
from grl_props.properties import Skip, register
from grl_props.properties._calls import assert_forward, assert_gradient, forward, leaf, vjp

_ALPHA = 0.75
_ALPHAS_FOR_RECOMPILES = (0.75, 0.5, 1.5, 2.25, 0.1)
#: At most this many graphs may be compiled while alpha takes the five values above
#: (Dynamo's automatic-dynamic compiles once static, once dynamic).
MAX_COMPILES = 2


def _alpha(layer: LayerUnderTest) -> float:
    return _ALPHA if layer.any_alpha else layer.default_alpha


def _inputs(shape: tuple[int, ...] = (2, 3), seed: int = 0) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, dtype=torch.float64, generator=generator)
    v = torch.randn(shape, dtype=torch.float64, generator=generator)
    return x, v


@contextlib.contextmanager
def _supported(feature: str) -> Iterator[None]:
    """Turn an exception from ``feature`` into an AssertionError naming it."""
    try:
        yield
    except (AssertionError, Skip):
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        raise AssertionError(f"{feature} raised {type(exc).__name__}: {first}") from None


@register("compat", "torch.func.grad gives {vjp}",
          remedy=("Write the layer as a new-style torch.autograd.Function (forward without ctx, "
                  "a setup_context staticmethod, generate_vmap_rule = True) instead "
                  "of an old-style Function or a torch.library op with register_autograd."))
def func_grad(layer: LayerUnderTest) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    x, v = _inputs()
    with _supported("torch.func.grad"):
        got = torch.func.grad(lambda t: (fn(t) * v).sum())(x)
    assert_gradient(got, x, v, alpha, layer.contract, what="torch.func.grad's gradient")


@register("compat", "torch.func.vjp's output is {forward} of the input, and it pulls v back to {vjp}",
          remedy=("Write the layer as a new-style torch.autograd.Function (forward without ctx, "
                  "a setup_context staticmethod, generate_vmap_rule = True) instead "
                  "of an old-style Function or a torch.library op with register_autograd."))
def func_vjp(layer: LayerUnderTest) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    x, v = _inputs()
    with _supported("torch.func.vjp"):
        out, pull, *_ = torch.func.vjp(fn, x)
        (got,) = pull(v)
    assert_forward(out, x, layer.contract, what="torch.func.vjp's primal output")
    assert_gradient(got, x, v, alpha, layer.contract, what="torch.func.vjp's cotangent")


@register("compat", "torch.func.vmap over a batch computes {forward}, and vmap(grad) gives {vjp} "
          "at v = 1",
          remedy=("Set generate_vmap_rule = True on a new-style torch.autograd.Function "
                  "(forward without ctx, a setup_context staticmethod), or give it a "
                  "vmap staticmethod."))
def func_vmap(layer: LayerUnderTest) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    xs, _ = _inputs((4, 3))
    with _supported("torch.func.vmap"):
        out = torch.func.vmap(fn)(xs)
    assert_forward(out, xs, layer.contract, what="vmap(layer)(xs)")
    with _supported("torch.func.vmap(torch.func.grad)"):
        grads = torch.func.vmap(torch.func.grad(lambda t: fn(t).sum()))(xs)
    assert_values_close(grads, layer.contract.expected_vjp(xs, torch.ones_like(xs), alpha),
                        what="vmap(grad(layer))")


@register("compat", "torch.func.jvp's output is {forward} of the input, and its tangent is {vjp} "
          "with t for v (an elementwise layer's JVP is its VJP)",
          remedy=("Give a new-style torch.autograd.Function (forward without ctx, a setup_context"
                  " staticmethod) a jvp staticmethod that returns {jvp}."),
          contracts=("linear_in_v",))
def func_jvp(layer: LayerUnderTest) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    x, t = _inputs()
    with _supported("torch.func.jvp"):
        out, tangent, *_ = torch.func.jvp(fn, (x,), (t,))
    assert_forward(out, x, layer.contract, what="torch.func.jvp's primal output")
    # An elementwise layer's Jacobian is diagonal: the JVP map is the VJP map.
    assert_gradient(tangent, x, t, alpha, layer.contract, what="torch.func.jvp's tangent",
                    of="tangent ÷ t")


def _compiled_steps(layer: LayerUnderTest, backend: str) -> Callable[[float], Callable[[Tensor], Tensor]]:
    """A function alpha → compiled layer, reusing one compiled object so recompiles can be counted."""
    built = layer.build(_alpha(layer))
    if isinstance(built, BoundFunction):
        compiled_fn = torch.compile(lambda t, a: built.call(t, a), backend=backend, fullgraph=True)
        # A schedule passes alpha as a 0-d tensor where the function takes one: a float argument
        # is specialized per value by Dynamo, a tensor is not.
        as_tensor = _accepts_tensor_alpha(built, layer)

        def with_function(alpha: float) -> Callable[[Tensor], Tensor]:
            value = torch.tensor(alpha, dtype=torch.float64) if as_tensor else alpha
            return lambda t: compiled_fn(t, value)

        return with_function
    compiled = torch.compile(built, backend=backend, fullgraph=True)

    def with_module(alpha: float) -> Callable[[Tensor], Tensor]:
        if alpha != _alpha(layer):
            try:
                set_alpha(built, alpha)
            except LookupError as exc:
                raise Skip(f"cannot change alpha on the compiled layer: {exc}") from None
        return compiled  # type: ignore[return-value]

    return with_module


def _accepts_tensor_alpha(built: BoundFunction, layer: LayerUnderTest) -> bool:
    """Whether the function computes the contract's gradient, eagerly, with a 0-d tensor alpha."""
    if built.alpha is None:
        return False
    try:
        x = leaf(torch.ones(2, dtype=torch.float64))
        built.fn(x, torch.tensor(0.5, dtype=torch.float64)).sum().backward()
        expected = layer.contract.expected_vjp(x, torch.ones_like(x), 0.5)
        return x.grad is not None and bool((x.grad == expected).all())
    except Exception:
        return False


def _check_compile(layer: LayerUnderTest, backend: str) -> None:
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    alphas = _ALPHAS_FOR_RECOMPILES if layer.any_alpha else (layer.default_alpha,)
    step = _compiled_steps(layer, backend)
    for i, alpha in enumerate(alphas):
        x, v = _inputs(seed=i)
        fn = step(alpha)
        with _supported(f"torch.compile(backend={backend!r}, fullgraph=True)"):
            got = vjp(fn, x, v, contract=layer.contract)
            out = fn(x.detach())
        assert_forward(out, x, layer.contract, what=f"the compiled forward (alpha={alpha})")
        assert_values_close(got, layer.contract.expected_vjp(x, v, alpha),
                            what=f"the compiled gradient (alpha={alpha})")
    compiles = int(counters["stats"]["unique_graphs"])
    if compiles > MAX_COMPILES:
        raise AssertionError(
            f"torch.compile compiled {compiles} graphs for {len(alphas)} alpha values "
            f"(at most {MAX_COMPILES} allowed): alpha is specialized, so a schedule recompiles "
            "every step until the recompile limit"
        )


@register("compat", "torch.compile(fullgraph=True, backend='aot_eager') matches eager, "
          f"at most {MAX_COMPILES} compiles over 5 alphas",
          remedy=("Keep forward traceable: alpha as a tensor buffer, never a Python float "
                  "(specialised per value), no float()/.item() or branch on tensor values (a graph "
                  "break), and a twin Function without a custom jvp while "
                  "torch.compiler.is_compiling()."))
def compile_aot_eager(layer: LayerUnderTest) -> None:
    _check_compile(layer, "aot_eager")


@register("compat", "torch.compile(fullgraph=True, backend='inductor') matches eager, "
          f"at most {MAX_COMPILES} compiles over 5 alphas",
          remedy=("Keep forward traceable: alpha as a tensor buffer, never a Python float "
                  "(specialised per value), no float()/.item() or branch on tensor values (a graph "
                  "break), and a twin Function without a custom jvp while "
                  "torch.compiler.is_compiling()."))
def compile_inductor(layer: LayerUnderTest) -> None:
    _check_compile(layer, "inductor")


def _check_autocast(layer: LayerUnderTest, device: str, dtype: torch.dtype) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    if isinstance(fn, nn.Module):
        fn = fn.to(device)
    torch.manual_seed(0)
    linear = nn.Linear(4, 4).to(device)
    x = torch.randn(3, 4, device=device)
    with _supported(f"autocast({device}, {dtype})"), torch.autocast(device, dtype=dtype):
        z = linear(x)
        out = forward(fn, z)
        v = torch.randn_like(z)
        if out.requires_grad or not layer.contract.zero_gradient:
            (got,) = torch.autograd.grad(out, z, v)
        else:  # a stop-gradient that detached its output: no gradient is the zero gradient
            got = torch.zeros_like(z)
    assert_forward(out, z, layer.contract, what=f"the output under autocast({device}, {dtype})")
    assert_values_close(got, layer.contract.expected_vjp(z, v, alpha),
                        what=f"the gradient under autocast({device})")


@register("compat", "under CPU autocast (bfloat16) forward is {forward} on the autocast "
          "activation and the gradient is {vjp} in its dtype",
          remedy=("Do not cast inside the layer (no custom_fwd(cast_inputs=...)): return the "
                  "activation in the dtype autocast gave it."))
def autocast(layer: LayerUnderTest) -> None:
    _check_autocast(layer, "cpu", torch.bfloat16)


@register("compat", "under CUDA autocast (float16) forward is {forward} on the autocast "
          "activation and the gradient is {vjp} in its dtype", requires=("cuda",),
          remedy=("Do not cast inside the layer (no custom_fwd(cast_inputs=...)): return the "
                  "activation in the dtype autocast gave it."))
def autocast_cuda(layer: LayerUnderTest) -> None:
    _check_autocast(layer, "cuda", torch.float16)


@register("compat", "a GradScaler round trip (scale, backward, unscale) gives {vjp} of the "
          "unscaled upstream gradient v", contracts=("linear_in_v",),
          remedy=("Do not clip or clamp the gradient inside the layer (under GradScaler it sees "
                  "scaled gradients); clip in the training loop after scaler.unscale_()."))
def gradscaler_roundtrip(layer: LayerUnderTest) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    x, v = (t.float() for t in _inputs())
    weight = nn.Parameter(torch.ones_like(x))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    optimizer = torch.optim.SGD([weight], lr=0.0)
    with _supported("GradScaler"):
        loss = (forward(fn, weight * x) * v).sum()
        if loss.requires_grad or not layer.contract.zero_gradient:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:  # a stop-gradient that detached its output: no gradient is the zero gradient
            weight.grad = torch.zeros_like(weight)
    if weight.grad is None:
        raise AssertionError("no gradient reached the parameter")
    assert_gradient(weight.grad, x, v * x, alpha, layer.contract, what="the unscaled gradient",
                    of="the unscaled gradient ÷ its upstream gradient", exact=False)


@register("compat", "double backward: gradcheck and gradgradcheck of the VJP map (x, v) ↦ "
          "VJP(v) in float64",
          remedy=("Drop @once_differentiable and compute backward with differentiable torch ops "
                  "({backward})."), contracts=("gradient_flows",))
def double_backward(layer: LayerUnderTest) -> None:
    fn, alpha, contract = layer.build(_alpha(layer)), _alpha(layer), layer.contract
    x, v = (leaf(t) for t in _inputs((4,)))

    def vjp_map(x_: Tensor, v_: Tensor) -> Tensor:
        out = forward(fn, x_)
        (grad,) = torch.autograd.grad(out, x_, v_, create_graph=True)
        return grad

    with _supported("differentiating the VJP (double backward)"):
        (by_v,) = torch.autograd.grad(vjp_map(x, v).sum(), v, allow_unused=True)
    # A VJP map linear in v has the VJP of ones as its derivative by v.
    slope = contract.expected_vjp(x, torch.ones_like(v), alpha)
    if by_v is None or (contract.linear_in_v and not bool((by_v == slope).all())):
        found = "None" if by_v is None else str(by_v.tolist())
        wanted = (f"{-alpha} everywhere" if contract.name == "reverse"
                  else f"{slope.tolist()} (the contract's VJP of ones)")
        why = ("the layer's backward is not differentiable (as with @once_differentiable), so "
               "double backward loses the gradient")
        if by_v is not None:  # differentiable, but not the contract's VJP: the VJP property says more
            why = "the layer's backward does not compute the contract's VJP (see the core VJP property)"
        raise AssertionError(
            f"the derivative of VJP(v) with respect to v is {found}, expected {wanted}: {why}")
    with _supported("gradcheck of the VJP map"):
        torch.autograd.gradcheck(vjp_map, (x, v))
    with _supported("gradgradcheck of the VJP map"):
        torch.autograd.gradgradcheck(vjp_map, (x, v))


def _custom_ops(fn: Callable[[Tensor], Any], x: Tensor) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """The non-aten operators ``fn`` dispatches, with their arguments."""
    from torch.utils._python_dispatch import TorchDispatchMode

    found: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            if func.namespace not in ("aten", "prim", "prims"):
                found.append((func, args, dict(kwargs or {})))
            return func(*args, **(kwargs or {}))

    with Recorder():
        fn(x)
    return found


@register("compat", "torch.library.opcheck passes for every custom operator the layer calls",
          remedy=("Register a fake implementation for the custom op (@op.register_fake returning "
                  "torch.empty_like(x)) and return a fresh tensor from it, not an alias of the "
                  "input."))
def opcheck(layer: LayerUnderTest) -> None:
    fn = layer.build(_alpha(layer))
    x, _ = _inputs()
    ops = _custom_ops(fn, leaf(x))
    if not ops:
        raise Skip("the layer calls no custom operator")
    for op, args, kwargs in ops:
        fresh = tuple(leaf(a.clone()) if isinstance(a, Tensor) and a.is_floating_point() else a
                      for a in args)
        try:
            torch.library.opcheck(op, fresh, kwargs)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:400]
            raise AssertionError(f"opcheck({op}) failed: {first}") from None


@register("compat", "torch.jit.script works and keeps the gradient ({vjp}), where the layer claims "
          "TorchScript support", requires=("claims_torchscript",),
          remedy=("Compute the gradient with a torch.autograd.Function called from forward "
                  "instead of a tensor hook or lambda, or stop claiming TorchScript support."))
def torchscript(layer: LayerUnderTest) -> None:
    fn, alpha = layer.build(_alpha(layer)), _alpha(layer)
    target = fn.fn if isinstance(fn, BoundFunction) else fn
    with _supported("torch.jit.script"):
        scripted = torch.jit.script(target)
    call = scripted
    if isinstance(fn, BoundFunction):
        call = scripted if fn.alpha is None else (lambda t: scripted(t, fn.alpha))
    x, v = _inputs()
    with _supported("the scripted layer"):
        got = vjp(call, x, v, contract=layer.contract)
    assert_values_close(got, layer.contract.expected_vjp(x, v, alpha),
                        what="the scripted layer's gradient")


@register("compat", "torch.export exports the layer and the exported program computes {forward}, "
          "where the layer claims export support", requires=("claims_torch_export",),
          remedy=("Apply the layer's maps unconditionally: do not branch on tensor values (if "
                  "bool(...)) in forward, or stop claiming torch.export support."))
def torch_export(layer: LayerUnderTest) -> None:
    fn = layer.build(_alpha(layer))
    module = fn if isinstance(fn, nn.Module) else _Wrap(fn)
    x, _ = _inputs()
    with _supported("torch.export.export"):
        program = torch.export.export(module, (x,))
        out = program.module()(x)
    assert_forward(require_tensor(out, "the exported output"), x, layer.contract,
                   what="the exported output")


class _Wrap(nn.Module):
    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)
