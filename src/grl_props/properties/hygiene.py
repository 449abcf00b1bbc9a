"""Hygiene properties: state, memory and the awkward inputs real training code produces."""

from __future__ import annotations

import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from grl_props import strategies as gs
from grl_props.adapters import LayerUnderTest, set_alpha
from grl_props.compare import assert_identical
from grl_props.properties import Skip, register
from grl_props.properties._calls import (
    alpha_from_gradient,
    assert_forward,
    assert_gradient,
    forward,
    gain_seen,
    in_domain,
    leaf,
    vjp,
)

_A, _B = 0.375, 1.75  # two alphas with exact products, far enough apart to tell which one acted


def _module(layer: LayerUnderTest, alpha: float | None = None) -> nn.Module:
    built = layer.build(alpha)
    if not isinstance(built, nn.Module):
        raise Skip(f"the layer is a {type(built).__name__}, not an nn.Module")
    return built


def _alpha_seen(layer: LayerUnderTest, fn: object) -> float:
    """The alpha a built layer applies, read off its gradient on ones (float64)."""
    return gain_seen(fn, layer.contract)  # type: ignore[arg-type]


def _applies(layer: LayerUnderTest) -> str:
    """How a message says which alpha a layer applies: "reverses with" for a reversal."""
    return "reverses with" if layer.contract.name == "reverse" else "applies"


def _backward(out: Tensor) -> None:
    """Backward from ``out`` with ones, unless a stop-gradient detached it (nothing flows back)."""
    if out.requires_grad:
        out.backward(torch.ones_like(out))


@register("hygiene", "the layer has no parameters (alpha is not trainable)",
          remedy=("Hold alpha (and any other constant) with self.register_buffer('alpha', "
                  "torch.tensor(alpha)) instead of "
                  "an nn.Parameter."))
def no_trainable_parameters(layer: LayerUnderTest) -> None:
    module = _module(layer)
    found = [name for name, _ in module.named_parameters()]
    if found:
        raise AssertionError(f"the layer has parameters {found}: an optimizer would train them")


@register("hygiene", "alpha is saved in state_dict: loading it into a layer built with another "
          "alpha restores the first", requires=("any_alpha",),
          remedy=("Hold alpha with self.register_buffer('alpha', torch.tensor(alpha)) "
                  "(persistent, the default), not as a plain tensor attribute or with "
                  "persistent=False."), contracts=("alpha",))
def alpha_in_state_dict(layer: LayerUnderTest) -> None:
    source, target = _module(layer, _A), _module(layer, _B)
    try:
        target.load_state_dict(source.state_dict())
    except Exception as exc:
        raise AssertionError(f"load_state_dict of the layer's own state_dict raised {exc!r}") from exc
    seen = _alpha_seen(layer, target)
    if seen != _A:
        raise AssertionError(
            f"after loading the state_dict of a layer with alpha={_A}, the layer built with "
            f"alpha={_B} {_applies(layer)} alpha={seen}: alpha is not in state_dict "
            f"(keys: {list(source.state_dict())})"
        )


@register("hygiene", "every tensor the layer holds is a buffer, so .to() moves it and "
          "state_dict saves it",
          remedy=("Register every tensor the layer holds with self.register_buffer(...) instead "
                  "of assigning it as a plain attribute."))
def alpha_moved_by_to(layer: LayerUnderTest) -> None:
    module = _module(layer)
    hidden = [
        ".".join(part for part in (name, attr) if part)
        for name, sub in module.named_modules()
        for attr, value in vars(sub).items()
        if isinstance(value, Tensor) and not attr.startswith("__")
    ]
    if hidden:
        raise AssertionError(
            f"tensor attribute(s) {', '.join(hidden)} are not registered buffers: .to(device) "
            "leaves them behind and state_dict does not save them"
        )


@register("hygiene", "on CUDA: the layer (moved with .to('cuda') when it is a module) runs forward "
          "and backward on cuda tensors and gives {vjp} there", requires=("cuda",),
          remedy=("Build nothing on the CPU in backward: keep constants (alpha, masks) as Python "
                  "floats or as tensors on grad.device."))
def runs_after_to_cuda(layer: LayerUnderTest) -> None:
    fn, alpha, contract = layer.build(), layer.default_alpha, layer.contract
    if isinstance(fn, nn.Module):
        fn = fn.to("cuda")
    x = torch.tensor([1.5, -2.0, 0.25], device="cuda")
    v = torch.tensor([1.0, 0.5, -4.0], device="cuda")
    try:
        grad = vjp(fn, x, v, contract=contract)
    except RuntimeError as exc:
        raise AssertionError(f"on cuda the layer raised: {str(exc).splitlines()[0][:300]}") from None
    if grad.device.type != "cuda":
        raise AssertionError(f"for a cuda input the gradient is on {grad.device}")
    assert_gradient(grad, x, v, alpha, contract, what="the gradient on cuda")


@register("hygiene", "backward uses the alpha in force at forward time, even when alpha is "
          "changed between forward and backward", requires=("any_alpha",),
          remedy=("Save a copy of alpha at forward time (ctx.alpha = float(alpha), or "
                  "alpha.detach().clone()), not a reference to the layer's buffer."),
          contracts=("alpha",))
def alpha_frozen_at_forward(layer: LayerUnderTest) -> None:
    fn = layer.build(_A)
    x = leaf(torch.ones(3, dtype=torch.float64))
    out = forward(fn, x)
    try:
        how = set_alpha(fn, _B)
    except LookupError as exc:
        raise Skip(f"cannot change this layer's alpha: {exc}") from None
    try:
        out.backward(torch.ones_like(out))
    except RuntimeError as exc:
        raise AssertionError(
            f"changing alpha ({how}) between forward and backward made backward raise: "
            f"{str(exc).splitlines()[0][:200]}"
        ) from None
    if x.grad is None:
        raise AssertionError("no gradient reached the input")
    seen = alpha_from_gradient(x.grad, layer.contract)
    if seen != _A:
        raise AssertionError(
            f"forward ran with alpha={_A}, alpha was then changed to {_B} ({how}) before backward, "
            f"and backward used alpha={seen}"
        )
    later = _alpha_seen(layer, fn)
    if later != _B:
        raise AssertionError(f"after changing alpha to {_B} ({how}), the next forward used {later}")


@register("hygiene", "independent instances do not share alpha", requires=("any_alpha",),
          remedy="Keep alpha on the instance (self.alpha, a buffer), not on the class.",
          contracts=("alpha",))
def instances_independent(layer: LayerUnderTest) -> None:
    first = layer.build(_A)
    second = layer.build(_B)
    for fn, alpha, label in ((first, _A, "first"), (second, _B, "second")):
        seen = _alpha_seen(layer, fn)
        if seen != alpha:
            raise AssertionError(
                f"the {label} of two instances (alphas {_A} and {_B}) {_applies(layer)} alpha={seen}"
            )
    try:
        set_alpha(second, 0.5)
    except LookupError:
        return
    if (seen := _alpha_seen(layer, first)) != _A:
        raise AssertionError(f"changing one instance's alpha changed the other's to {seen}")


@register("hygiene", "no activation is saved for backward (only alpha, at most one element)",
          given={"case": gs.tensor_cases(shape=gs.shapes(min_dims=1, allow_empty=False),
                                         dtype=torch.float32, finite=True)},
          remedy=("Save no activation for backward (at most alpha: ctx.alpha = ...), never the input with "
                  "ctx.save_for_backward(x)."), contracts=("input_free_vjp",))
def no_saved_activations(layer: LayerUnderTest, case: gs.TensorCase) -> None:
    fn = layer.build()
    x = leaf(case.tensor)
    saved: list[tuple[int, ...]] = []

    def pack(t: Tensor) -> Tensor:
        saved.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = forward(fn, x)
    big = [s for s in saved if torch.Size(s).numel() > 1]
    if big:
        why = ("a gradient reversal needs only alpha" if layer.contract.name == "reverse"
               else f"a {layer.contract.noun}'s gradient does not read the input")
        raise AssertionError(f"the layer saved tensor(s) of shape {big} for backward: it keeps "
                             f"the activation alive for nothing ({why})")
    _backward(out)


@register("hygiene", "the input's values and version counter are untouched by forward and backward",
          remedy="Never modify the input in place in forward or backward: work on a copy.")
def input_not_mutated(layer: LayerUnderTest) -> None:
    fn = layer.build()
    x = leaf(torch.tensor([1.5, -2.0, 0.0, 3.25], dtype=torch.float64))
    original, version = x.detach().clone(), x._version
    out = forward(fn, x)
    _backward(out)
    assert_identical(x.detach(), original, what="the input after forward and backward")
    if x._version != version:
        raise AssertionError(f"the input's version counter moved from {version} to {x._version}: "
                             "it was modified in place")


@register("hygiene", "in-place ops on the output work and leave the input untouched",
          remedy="Return {forward} from forward, a new tensor, not x itself or x.view_as(x).")
def output_safe_for_inplace(layer: LayerUnderTest) -> None:
    fn = layer.build()
    x = leaf(torch.tensor([1.5, -2.0, 3.0], dtype=torch.float64))
    hidden = x * 1.0  # a non-leaf activation, as in a model
    try:
        out = forward(fn, hidden)
        out.mul_(2.0)
        _backward(out)
    except RuntimeError as exc:
        raise AssertionError(f"an in-place op on the output raised: {str(exc).splitlines()[0]}") from None
    assert_identical(hidden.detach(), torch.tensor([1.5, -2.0, 3.0], dtype=torch.float64),
                     what="the input after an in-place op on the output")


@register("hygiene", "under no_grad and inference_mode the layer computes {forward} and records no "
          "graph",
          given={"case": gs.tensor_cases(shape=gs.shapes(allow_empty=False))},
          remedy=("Leave grad mode as the caller set it: no torch.enable_grad() or "
                  "requires_grad_() inside forward."))
def no_grad_and_inference_mode(layer: LayerUnderTest, case: gs.TensorCase) -> None:
    fn = layer.build()
    x = leaf(in_domain(layer.contract, case.tensor))
    for mode, context in (("no_grad", torch.no_grad), ("inference_mode", torch.inference_mode)):
        with context():
            out = forward(fn, x)
        assert_forward(out, x.detach(), layer.contract, what=f"the output under {mode}")
        if out.grad_fn is not None:  # a view may still say requires_grad; a graph is the bug
            raise AssertionError(f"the output under {mode} records a graph ({out.grad_fn})")


@register("hygiene", "non-contiguous upstream gradients (transposed, strided, expanded, "
          "channels_last) give the correct VJP",
          given={"case": gs.vjp_cases(dtype=gs.dtypes(complex=False),
                                      alpha=gs.alphas(max_magnitude=1e4)),
                 "layout": gs.layouts(include=("transposed", "strided", "expanded", "channels_last"))},
          examples=tuple({"case": gs.typical_vjp_case(torch.float32, 0.5), "layout": layout}
                         for layout in ("transposed", "strided", "expanded")),
          remedy=("Compute backward as {backward} without assuming a layout: no "
                  "grad.view(...), use reshape if a reshape is needed."))
def noncontiguous_upstream_gradient(layer: LayerUnderTest, case: gs.VJPCase, layout: str) -> None:
    from grl_props.strategies import with_layout

    v_values = case.v.tensor.detach().cpu().to(torch.float64).numpy()
    v, used = with_layout(v_values, layout, case.v.dtype, case.v.device)  # may fall back
    alpha = case.alpha.value if layer.any_alpha else layer.default_alpha
    x = in_domain(layer.contract, case.x.tensor)
    got = vjp(layer.build(alpha), x, v, contract=layer.contract)
    assert_gradient(got, x, v, alpha, layer.contract,
                    what=f"VJP(v) for v with layout {used} and strides {tuple(v.stride())}",
                    inputs={"v": v, "alpha": alpha} if layer.contract.takes_alpha else {"x": x, "v": v})


@register("hygiene", "zero-size inputs keep their shape forward and get an empty gradient",
          given={"shape": gs.shapes(min_dims=1).filter(lambda s: 0 in s),
                 "dtype": gs.dtypes(complex=False)},
          remedy=("Do not reduce the activation in forward (max(), min() of an empty tensor "
                  "raise), or guard the reduction with if x.numel()."))
def zero_size_inputs(layer: LayerUnderTest, shape: tuple[int, ...], dtype: torch.dtype) -> None:
    x = torch.empty(shape, dtype=dtype)
    fn = layer.build()
    grad = vjp(fn, x, torch.empty(shape, dtype=dtype), contract=layer.contract)
    if grad.shape != x.shape:
        raise AssertionError(f"the gradient of a zero-size input has shape {tuple(grad.shape)}")


@register("hygiene", "integer and bool inputs are returned unchanged (same dtype) or refused "
          "with an exception, never silently converted",
          given={"case": gs.tensor_cases(shape=gs.shapes(allow_empty=False),
                                         dtype=st.sampled_from(gs.INTEGER_DTYPES))},
          remedy=("Return {forward} (which keeps the dtype) instead of x * 1.0, or raise a "
                  "TypeError for non-floating inputs."))
def integer_inputs_handled_or_refused(layer: LayerUnderTest, case: gs.TensorCase) -> None:
    fn = layer.build()
    try:
        out = fn(case.tensor)
    except (TypeError, ValueError, RuntimeError, NotImplementedError):
        return  # refused: acceptable
    assert_forward(out, case.tensor, layer.contract, what=f"the output for a {case.dtype} input")
