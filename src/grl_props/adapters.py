"""Any user's gradient reversal layer → one calling convention.

A *spec* names a layer: ``package.module:Name`` or ``path/to/file.py:Name`` (``Name`` may be
dotted, ``Outer.Inner``). :func:`load_layer` turns it into a :class:`LayerUnderTest`, whose
:meth:`~LayerUnderTest.build` makes a fresh callable ``layer(x) -> Tensor`` for a given alpha.

Accepted kinds of ``Name``:

* an ``nn.Module`` subclass built with an alpha argument, found by name from the signature
  (:data:`ALPHA_ARGUMENT_NAMES`, or ``alpha_arg=``); a subclass whose constructor needs no
  argument and names no alpha is built once and treated as an instance;
* a function ``f(x, alpha)``;
* a ``torch.autograd.Function`` subclass, called as ``.apply(x, alpha)`` with a Python float, or
  with a 0-d tensor when the Function needs one (it is tried once on a 2-element tensor);
* an ``nn.Module`` instance: its alpha is fixed (read from an alpha-like attribute, else assumed
  1.0), and properties that need other alphas are skipped with that reason.

Anything else raises :class:`SpecError` with one sentence saying what was expected and found.

*Contracts.* A layer is checked against a :class:`~grl_props.contracts.Contract` (default
``reverse``). Under a contract whose layers take no alpha (``stop``, ``ste-round``, ``ste-sign``)
the same kinds are accepted without the alpha: a module class built with no argument, a function
``f(x)``, a Function called as ``.apply(x)``, an instance.

*Claims.* Some properties (``torchscript``, ``torch_export``) check a support that not every
layer offers; they run only where the layer claims it, explicitly, in one of three ways: an
attribute ``__grl_props_claims__ = ("torchscript",)`` on the class, function or Function
(:data:`CLAIMS_ATTRIBUTE`); ``load_layer(..., claims=...)`` (the CLI's ``--claim``, the plugin's
``--grl-claim``, ``conformance_suite(claims=...)``); or :data:`DOCUMENTED_CLAIMS`, for
third-party layers whose own documentation claims the support. Docstrings are never read.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor, nn

from grl_props.contracts import REVERSE, Contract, ContractError, resolve_contract

__all__ = [
    "ALPHA_ARGUMENT_NAMES",
    "CLAIMS",
    "CLAIMS_ATTRIBUTE",
    "DEFAULT_SPECS",
    "DOCUMENTED_CLAIMS",
    "LayerUnderTest",
    "SpecError",
    "default_layers",
    "load_layer",
    "set_alpha",
]

#: Constructor argument names recognised as the reversal strength, in order of preference.
ALPHA_ARGUMENT_NAMES = (
    "alpha", "alpha_", "lambda_", "lambd", "lambda", "lamda", "lamb", "lam", "lmbda", "lmbd",
    "grl_lambda", "grl_weight", "grl_alpha", "reversal_weight", "grad_weight", "weight", "coeff",
    "coef",
    "coefficient", "scale", "factor", "strength", "beta", "gamma",
)

#: Attribute names that may hold alpha on a built layer (buffers, tensors, floats).
_ALPHA_ATTRIBUTE_NAMES = tuple(
    dict.fromkeys(n for a in ALPHA_ARGUMENT_NAMES for n in (a, "_" + a.rstrip("_"), a.rstrip("_")))
)

#: Layers ``grl-props check`` runs with no argument: ours, then known third-party ones if installed.
DEFAULT_SPECS = (
    "grl_props:GradientReversal",
    "pytorch_revgrad:RevGrad",
    "gradient_reversal:GradientReversalLayer",
)

#: Supports a layer may claim; a property that checks one runs only where it is claimed.
CLAIMS = ("torchscript", "torch_export")

#: The attribute a layer sets to claim supports, e.g. ``__grl_props_claims__ = ("torchscript",)``.
CLAIMS_ATTRIBUTE = "__grl_props_claims__"

#: Claims of third-party layers, made in their own documentation: ``module:qualname`` → claims.
DOCUMENTED_CLAIMS: dict[str, tuple[str, ...]] = {
    # torch-gradient-reversal 1.0.0, module docstring of gradient_reversal.gradient_reversal:
    # "full compatibility with: torch.compile() and TorchScript, CUDA graphs and torch.jit.script"
    "gradient_reversal.gradient_reversal:GradientReversalLayer": ("torchscript",),
}

Kind = Literal["module_class", "function", "autograd_function", "module_instance"]


class SpecError(ValueError):
    """A spec that cannot be turned into a layer; the message is one sentence for the user."""


@dataclass
class LayerUnderTest:
    """One layer, behind one calling convention.

    ``build(alpha)`` returns a fresh callable ``layer(x)``: a new module for module classes, a new
    bound function for functions and Functions, a deep copy for instances. ``fixed_alpha`` is set
    when only one alpha can be built; ``obj`` is what the spec named; ``spec`` is the spec string
    when the layer was loaded from one (so another process can load it again); ``claims`` are the
    supports it claims (:data:`CLAIMS`); ``contract`` is what it promises (default ``reverse``),
    and ``contract_spec`` the name or spec it was given by, when it was given by one.
    """

    name: str
    kind: Kind
    obj: Any
    fixed_alpha: float | None = None
    alpha_arg: str | None = None
    note: str = ""
    spec: str | None = None
    claims: frozenset[str] = frozenset()
    contract: Contract = REVERSE
    contract_spec: str | None = None
    _alpha_as_tensor: bool | None = field(default=None, repr=False)

    @property
    def any_alpha(self) -> bool:
        """Whether layers with arbitrary alphas can be built (never under a contract without
        alpha)."""
        return self.fixed_alpha is None and self.contract.takes_alpha

    @property
    def default_alpha(self) -> float:
        """The alpha used by properties that need only one."""
        return 1.0 if self.fixed_alpha is None else self.fixed_alpha

    def build(self, alpha: float | None = None, *, as_tensor: bool | None = None
              ) -> Callable[[Tensor], Tensor]:
        """A fresh layer applying reversal with ``alpha`` (``None``: the default alpha).

        For functions and Functions, alpha is passed as a 0-d tensor when the layer needs one
        or ``as_tensor`` asks for it, else as a float; module layers get it in their constructor.
        Under a contract without alpha, ``alpha`` is ignored: the layer is built as it is.
        """
        if not self.contract.takes_alpha:
            return self._build_without_alpha()
        alpha = self.default_alpha if alpha is None else float(alpha)
        if self.kind == "module_class":
            return self.obj(**{str(self.alpha_arg): alpha})  # type: ignore[no-any-return]
        if self.kind == "module_instance":
            if alpha != self.fixed_alpha:
                raise ValueError(f"{self.name} has a fixed alpha {self.fixed_alpha}, not {alpha}")
            try:
                return copy.deepcopy(self.obj)
            except Exception:  # not copyable: share the one instance
                return self.obj
        apply = self.obj.apply if self.kind == "autograd_function" else self.obj
        if self._alpha_as_tensor is None:
            self._alpha_as_tensor = _needs_tensor_alpha(apply)
        tensor = self._alpha_as_tensor or bool(as_tensor)
        # float64, so that no alpha a float can hold is rounded away (1e-148 stays 1e-148)
        return BoundFunction(apply, torch.tensor(alpha, dtype=torch.float64) if tensor else alpha)

    def _build_without_alpha(self) -> Callable[[Tensor], Tensor]:
        if self.kind == "module_class":
            return self.obj()  # type: ignore[no-any-return]
        if self.kind == "module_instance":
            try:
                return copy.deepcopy(self.obj)
            except Exception:  # not copyable: share the one instance
                return self.obj  # type: ignore[no-any-return]
        return BoundFunction(self.obj.apply if self.kind == "autograd_function" else self.obj, None)


class BoundFunction:
    """``f(x, alpha)`` with alpha bound; alpha is a float or a 0-d tensor shared by every call,
    or ``None`` for a layer without alpha (called as ``f(x)``)."""

    def __init__(self, fn: Callable[..., Any], alpha: float | Tensor | None) -> None:
        self.fn = fn
        self.alpha = alpha

    def __call__(self, x: Tensor) -> Any:
        return self.call(x, self.alpha)

    def call(self, x: Tensor, alpha: Any) -> Any:
        """``fn(x, alpha)``, or ``fn(x)`` for a layer without alpha."""
        return self.fn(x) if self.alpha is None else self.fn(x, alpha)

    def __repr__(self) -> str:
        return f"BoundFunction({getattr(self.fn, '__qualname__', self.fn)!r}, alpha={self.alpha!r})"


def _needs_tensor_alpha(apply: Callable[..., Any]) -> bool:
    """True when the layer works with a 0-d tensor alpha but not with a float."""

    def works(alpha: float | Tensor) -> bool:
        try:
            x = torch.ones(2, requires_grad=True)
            out = apply(x, alpha)
            out.sum().backward()
            return isinstance(x.grad, Tensor)
        except Exception:
            return False

    return not works(0.5) and works(torch.tensor(0.5))


def set_alpha(layer: Any, alpha: float) -> str:
    """Change a built layer's alpha in place for later calls; return how, or raise ``LookupError``.

    Uses, in order: a ``set_alpha`` method; a bound tensor alpha (filled in place, as a training
    loop's schedule would); an alpha-like tensor attribute or buffer (filled in place); an
    alpha-like float attribute (replaced).
    """
    if callable(getattr(layer, "set_alpha", None)):
        layer.set_alpha(alpha)
        return "set_alpha()"
    if isinstance(layer, BoundFunction):
        if isinstance(layer.alpha, Tensor):
            with torch.no_grad():
                layer.alpha.fill_(alpha)
            return "the alpha tensor filled in place"
        layer.alpha = alpha
        return "the bound float replaced"
    name, value = _find_alpha_attribute(layer)
    if isinstance(value, Tensor):
        with torch.no_grad():
            value.fill_(alpha)
        return f"{name}.fill_()"
    setattr(layer, name, type(value)(alpha))
    return f"{name} = {alpha}"


def _find_alpha_attribute(layer: Any) -> tuple[str, Any]:
    for name in _ALPHA_ATTRIBUTE_NAMES:
        try:
            value = getattr(layer, name)
        except Exception:
            continue
        if isinstance(value, Tensor) and value.numel() == 1 and value.is_floating_point():
            return name, value
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            return name, value
    raise LookupError(f"found no alpha attribute ({', '.join(_ALPHA_ATTRIBUTE_NAMES[:6])}, ...)")


# ---------------------------------------------------------------------------------------------
# Loading specs


def load_layer(spec: str | Any, *, alpha_arg: str | None = None,
               claims: Sequence[str] = (), contract: str | Contract | None = None) -> LayerUnderTest:
    """Resolve ``spec`` (a string, or the object itself) into a :class:`LayerUnderTest`.

    ``claims`` adds to what the layer claims itself (:data:`CLAIMS_ATTRIBUTE`,
    :data:`DOCUMENTED_CLAIMS`); ``contract`` is a built-in contract name, a
    ``package.module:NAME`` spec or a Contract (default ``reverse``). Raises :class:`SpecError`
    with one sentence when the spec does not import, names an object of the wrong kind, or a
    claim or the contract is unknown. Nothing of the user's is called except a no-argument
    constructor of a module class that names no alpha argument.
    """
    given = _check_claims(claims, "claims")
    try:
        promised = resolve_contract(contract)
    except ContractError as exc:
        raise SpecError(str(exc)) from None
    if isinstance(spec, str):
        obj = _import_spec(spec)
        name = spec
    else:
        obj = spec
        name = getattr(spec, "__qualname__", None) or type(spec).__qualname__
    layer = (_classify(name, obj, alpha_arg) if promised.takes_alpha
             else _classify_without_alpha(name, obj, promised))
    layer.contract = promised
    layer.contract_spec = contract if isinstance(contract, str) else None
    layer.spec = spec if isinstance(spec, str) else None
    layer.claims = given | _declared_claims(name, obj)
    return layer


def _check_claims(claims: Any, where: str) -> frozenset[str]:
    if isinstance(claims, str) or not isinstance(claims, (list, tuple, set, frozenset)):
        raise SpecError(f"{where} must be a tuple of claim names among {', '.join(CLAIMS)}, "
                        f"got {claims!r}")
    unknown = sorted(str(c) for c in claims if c not in CLAIMS)
    if unknown:
        raise SpecError(f"{where} names unknown claims {unknown}; known: {', '.join(CLAIMS)}")
    return frozenset(claims)


def _declared_claims(name: str, obj: Any) -> frozenset[str]:
    """What ``obj`` claims by its attribute or by :data:`DOCUMENTED_CLAIMS` (never by docstring)."""
    found: frozenset[str] = frozenset()
    if hasattr(obj, CLAIMS_ATTRIBUTE):
        found = _check_claims(getattr(obj, CLAIMS_ATTRIBUTE), f"{name}.{CLAIMS_ATTRIBUTE}")
    owner = obj if isinstance(obj, type) or inspect.isfunction(obj) else type(obj)
    key = f"{getattr(owner, '__module__', '')}:{getattr(owner, '__qualname__', '')}"
    return found | frozenset(DOCUMENTED_CLAIMS.get(key, ()))


def default_layers() -> list[LayerUnderTest]:
    """The reference layer plus every known third-party layer that imports here."""
    layers = []
    for spec in DEFAULT_SPECS:
        try:
            layers.append(load_layer(spec))
        except SpecError:
            continue
    return layers


def _import_spec(spec: str) -> Any:
    if ":" in spec:
        where, _, attr = spec.rpartition(":")
    elif "." in spec and not spec.endswith(".py"):
        where, _, attr = spec.rpartition(".")
    else:
        raise SpecError(
            f"expected a spec of the form package.module:Name or path/to/file.py:Name, got {spec!r}"
        )
    if not where or not attr:
        raise SpecError(f"expected a spec of the form package.module:Name, got {spec!r}")
    module = _import_file(where) if where.endswith(".py") else _import_module(where)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SpecError(f"{where!r} has no attribute {attr!r}") from None
    return obj


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - a user's import may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise SpecError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from None


def _import_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise SpecError(f"file {path!r} does not exist")
    module_name = "_grl_props_spec_" + os.path.splitext(os.path.basename(path))[0]
    directory = os.path.dirname(os.path.abspath(path))
    if directory not in sys.path:
        sys.path.insert(0, directory)  # so the file can import its siblings
    try:
        file_spec = importlib.util.spec_from_file_location(module_name, path)
        if file_spec is None or file_spec.loader is None:
            raise SpecError(f"{path!r} is not an importable Python file")
        module = importlib.util.module_from_spec(file_spec)
        sys.modules[module_name] = module
        file_spec.loader.exec_module(module)
    except SpecError:
        raise
    except BaseException as exc:  # noqa: BLE001
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise SpecError(f"importing {path!r} failed: {type(exc).__name__}: {exc}") from None
    return module


_EXPECTED = (
    "an nn.Module subclass, an nn.Module instance, a function f(x, alpha) "
    "or a torch.autograd.Function subclass"
)


def _classify(name: str, obj: Any, alpha_arg: str | None) -> LayerUnderTest:
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return LayerUnderTest(name, "autograd_function", obj)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        return _module_class(name, obj, alpha_arg)
    if isinstance(obj, nn.Module):
        alpha, note = _instance_alpha(obj)
        return LayerUnderTest(name, "module_instance", obj, fixed_alpha=alpha, note=note)
    if callable(obj) and not isinstance(obj, type):
        _check_two_arguments(name, obj)
        return LayerUnderTest(name, "function", obj)
    raise SpecError(f"expected {_EXPECTED}; {name!r} is {_describe(obj)}")


def _classify_without_alpha(name: str, obj: Any, contract: Contract) -> LayerUnderTest:
    """Under a contract without alpha: the same kinds, built and called without alpha."""
    if isinstance(obj, type) and issubclass(obj, torch.autograd.Function):
        return LayerUnderTest(name, "autograd_function", obj)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        try:
            inspect.signature(obj).bind()
        except TypeError:
            raise SpecError(f"a {contract.name} layer takes no alpha, so grl-props builds "
                            f"{name}() without arguments, but its constructor needs some; name a "
                            "built instance or a function instead") from None
        except ValueError:
            pass  # no signature to read: let building it find out
        return LayerUnderTest(name, "module_class", obj)
    if isinstance(obj, nn.Module):
        return LayerUnderTest(name, "module_instance", obj)
    if callable(obj) and not isinstance(obj, type):
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return LayerUnderTest(name, "function", obj)  # builtins and ops: cannot tell
        try:
            signature.bind(object())
        except TypeError:
            raise SpecError(f"a {contract.name} layer takes no alpha: expected a function f(x) "
                            f"taking one argument; {name!r} has signature {signature}") from None
        return LayerUnderTest(name, "function", obj)
    raise SpecError(f"expected an nn.Module subclass, an nn.Module instance, a function f(x) or a "
                    f"torch.autograd.Function subclass; {name!r} is {_describe(obj)}")


def _describe(obj: Any) -> str:
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}, which is none of these"
    return f"an object of type {type(obj).__name__}"


def _check_two_arguments(name: str, fn: Any) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and ops: cannot tell, let the properties find out
    try:
        signature.bind(object(), 1.0)
    except TypeError:
        raise SpecError(
            f"expected a function f(x, alpha) taking two arguments; {name!r} has signature "
            f"{signature}"
        ) from None


def _module_class(name: str, cls: type[nn.Module], alpha_arg: str | None) -> LayerUnderTest:
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    names = [p for p in parameters if p != "self"]
    accepts_kwargs = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if alpha_arg is not None:
        if alpha_arg not in names and not accepts_kwargs:
            raise SpecError(
                f"{name!r} has no constructor argument {alpha_arg!r} (it takes {', '.join(names) or 'none'})"
            )
        return LayerUnderTest(name, "module_class", cls, alpha_arg=alpha_arg)
    for candidate in ALPHA_ARGUMENT_NAMES:
        if candidate in names:
            return LayerUnderTest(name, "module_class", cls, alpha_arg=candidate)
    try:
        instance = cls()
    except Exception as exc:
        raise SpecError(
            f"found no alpha argument in {name}({', '.join(names)}) and it cannot be built without "
            f"arguments ({type(exc).__name__}: {exc}); name it with --alpha-arg"
        ) from None
    alpha, note = _instance_alpha(instance)
    return LayerUnderTest(
        name, "module_instance", instance, fixed_alpha=alpha,
        note=f"{name}() names no alpha argument; " + note,
    )


def _instance_alpha(instance: nn.Module) -> tuple[float, str]:
    try:
        attr, value = _find_alpha_attribute(instance)
    except LookupError:
        return 1.0, "no alpha attribute found, alpha assumed 1.0"
    return float(value), f"alpha {float(value):g} read from .{attr}"
