"""Contracts: what a custom-gradient layer promises, as a declared object.

A gradient reversal layer is one member of a family of elementwise layers with a hand-written
gradient: gradient multipliers, stop-gradient, straight-through estimators. A :class:`Contract`
states what one kind promises, so that the same property battery can check any of them:

* ``forward``: the forward map, elementwise (``x ↦ x`` for the identity, ``round``, ``sign``);
* ``vjp``: the vector-Jacobian product map ``(x, v, alpha) ↦ gradient``, elementwise, evaluated
  by grl-props in float64 (complex128) and rounded once to the gradient's dtype. The Jacobian of
  an elementwise map is diagonal, so the JVP map is the same function (``torch.func.jvp``);
* ``alpha``: how alpha enters: ``"linear"`` (the VJP is linear in alpha and zero at alpha 0: the
  layer takes alpha as its argument) or ``"none"`` (the layer takes no alpha);
* ``gain``: where the VJP is ``c · v`` for every x, alpha ↦ c (``-alpha`` for a reversal); it
  makes failure messages read "gradient ÷ v ... (expected -0.3)";
* how values are compared: ``signed_zeros`` (the forward keeps the sign of zero, compared bit for
  bit), ``finite_only`` and ``complex`` (the maps are promised on finite, or real, values only:
  drawn non-finite or complex inputs are mapped into that domain, and failures say so).

Built in (:data:`CONTRACTS`): ``reverse`` (the default: identity, ``-alpha·v``), ``scale``
(identity, ``+alpha·v``), ``stop`` (identity, zero gradient), ``ste-round`` (round half to even,
identity gradient), ``ste-sign`` (sign, ``v·1{|x| ≤ 1}``). A user defines another in Python and
names it ``package.module:NAME`` (``grl-props check --contract``, ``conformance_suite(contract=)``,
``--grl-contract``); :func:`resolve_contract` turns either into a :class:`Contract`.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["CONTRACTS", "DEFAULT_CONTRACT", "REVERSE", "SCALE", "STE_ROUND", "STE_SIGN", "STOP",
           "Contract", "ContractError", "contract_reference", "reference_layer", "resolve_contract",
           "verdict_not_run"]

AlphaRole = Literal["linear", "none"]


class ContractError(ValueError):
    """A contract name or spec that does not resolve; the message is one sentence for the user."""


@dataclass(frozen=True)
class Contract:
    """What an elementwise custom-gradient layer promises (see the module docstring).

    ``forward(x)`` returns the expected output in x's dtype; ``vjp(x, v, alpha)`` gets x and v in
    float64 (complex128 for complex v) and returns the expected gradient in that precision.
    ``noun`` names a layer that keeps the contract ("gradient reversal layer"); ``forward_text``
    and ``vjp_text`` state the maps in words for matrices and failure messages.
    """

    name: str
    noun: str
    forward: Callable[[Tensor], Tensor]
    vjp: Callable[[Tensor, Tensor, float], Tensor]
    forward_text: str
    vjp_text: str
    alpha: AlphaRole = "linear"
    gain: Callable[[float], float] | None = None
    forward_is_identity: bool = True
    signed_zeros: bool = True
    finite_only: bool = False
    complex: bool = True
    #: The gradient is zero for every input: a layer may detach its output (no gradient at all).
    zero_gradient: bool = False
    #: The VJP reads x (``ste-sign``): saving the input for backward is then no defect.
    vjp_reads_input: bool = False
    #: The VJP is linear in v (false for a clipped gradient, -alpha·clamp(v, -c, c)).
    linear_in_v: bool = True
    #: The maps as code, for remedies ("return grad * -alpha from backward"); "" says it in words.
    forward_code: str = ""
    backward_code: str = ""
    jvp_code: str = ""

    def __post_init__(self) -> None:
        if self.alpha not in ("linear", "none"):
            raise ContractError(f"contract {self.name!r}: alpha must be 'linear' or 'none', got "
                                f"{self.alpha!r}")

    @property
    def takes_alpha(self) -> bool:
        """Whether a layer keeping this contract takes an alpha argument."""
        return self.alpha == "linear"

    def code_words(self) -> dict[str, str]:
        """What remedies name: ``forward``, ``backward`` and ``jvp`` as code where the contract
        gives it, else in words (``the contract's VJP (v where |x| ≤ 1, else 0)``)."""
        return {"forward": self.forward_code or f"the contract's forward ({self.forward_text})",
                "backward": self.backward_code or f"the contract's VJP ({self.vjp_text})",
                "jvp": self.jvp_code or f"the contract's VJP map of the tangent ({self.vjp_text})"}

    @property
    def summary(self) -> str:
        """One line: ``reverse: forward the identity, VJP -alpha·v``."""
        return f"{self.name}: forward {self.forward_text}, VJP {self.vjp_text}"

    def expected_forward(self, x: Tensor) -> Tensor:
        """The output the contract promises for ``x`` (a new tensor, x's dtype and device)."""
        return self.forward(x.detach()).to(x.dtype)

    def expected_vjp(self, x: Tensor, v: Tensor, alpha: float) -> Tensor:
        """The gradient the contract promises, computed in float64 (complex128) and rounded once
        to ``v``'s dtype."""
        wide = torch.complex128 if v.is_complex() else torch.float64
        wide_x = x.detach().to(torch.complex128 if x.is_complex() else torch.float64)
        return self.vjp(wide_x, v.detach().to(wide), alpha).to(v.dtype)

    def exact_vjp(self, v: Tensor, alpha: float) -> bool:
        """Whether the promised gradient is exact in v's dtype whatever the layer's arithmetic:
        always for contracts without alpha (the gradient selects or zeroes v), and for a gain that
        is 0 or a power of two with no nonzero product below the dtype's smallest normal."""
        if self.gain is None:
            return not self.takes_alpha
        gain = self.gain(alpha)
        if gain != 0 and not (math.isfinite(gain) and math.frexp(abs(gain))[0] == 0.5):
            return False
        if not (v.is_floating_point() or v.is_complex()):
            return True
        real = v.dtype.to_real() if v.is_complex() else v.dtype
        wide = v.detach().to(torch.complex128 if v.is_complex() else torch.float64)
        product = (wide * gain).to(v.dtype)  # a product that underflows to 0 is exact
        parts = torch.view_as_real(product) if product.is_complex() else product
        small = (parts != 0) & (parts.abs() < torch.finfo(real).tiny)
        return not bool(small.any())


# ---------------------------------------------------------------------------------------------
# The built-in maps, as module-level functions (a child process finds a built-in by its name).


def _identity(x: Tensor) -> Tensor:
    return x.clone()


def _reverse_vjp(x: Tensor, v: Tensor, alpha: float) -> Tensor:
    return v * (-alpha)


def _scale_vjp(x: Tensor, v: Tensor, alpha: float) -> Tensor:
    return v * alpha


def _negative(alpha: float) -> float:
    return -alpha


def _same(alpha: float) -> float:
    return alpha


def _zero_vjp(x: Tensor, v: Tensor, alpha: float) -> Tensor:
    return torch.zeros_like(v)  # zero for every v: a stop-gradient blocks NaN and inf too


def _zero(alpha: float) -> float:
    return 0.0


def _round(x: Tensor) -> Tensor:
    return torch.round(x) if x.is_floating_point() else x.clone()


def _identity_vjp(x: Tensor, v: Tensor, alpha: float) -> Tensor:
    return v.clone()


def _one(alpha: float) -> float:
    return 1.0


def _clipped_identity_vjp(x: Tensor, v: Tensor, alpha: float) -> Tensor:
    return torch.where(x.abs() <= 1, v, torch.zeros_like(v))


REVERSE = Contract(
    "reverse", "gradient reversal layer", _identity, _reverse_vjp, "the identity", "-alpha·v",
    gain=_negative, forward_code="x.clone()", backward_code="grad * -alpha",
    jvp_code="-alpha * x_tangent")
SCALE = Contract(
    "scale", "gradient multiplier", _identity, _scale_vjp, "the identity", "+alpha·v", gain=_same,
    forward_code="x.clone()", backward_code="grad * alpha", jvp_code="alpha * x_tangent")
STOP = Contract(
    "stop", "stop-gradient layer", _identity, _zero_vjp, "the identity",
    "0 (for every v, NaN and inf included)", alpha="none", gain=_zero, zero_gradient=True,
    forward_code="x.detach().clone()", backward_code="torch.zeros_like(grad)",
    jvp_code="torch.zeros_like(x_tangent)")
STE_ROUND = Contract(
    "ste-round", "straight-through rounding estimator", _round, _identity_vjp,
    "round(x), half to even", "v (the identity)", alpha="none", gain=_one,
    forward_is_identity=False, signed_zeros=False, finite_only=True, complex=False,
    forward_code="torch.round(x)", backward_code="grad", jvp_code="x_tangent")
STE_SIGN = Contract(
    "ste-sign", "straight-through sign estimator", torch.sign, _clipped_identity_vjp,
    "sign(x) (sign(0) = 0)", "v where |x| ≤ 1, else 0", alpha="none",
    forward_is_identity=False, signed_zeros=False, finite_only=True, complex=False,
    vjp_reads_input=True, forward_code="torch.sign(x)",
    backward_code="grad * (x.abs() <= 1)", jvp_code="x_tangent * (x.abs() <= 1)")

#: Built-in contracts by name; ``reverse`` is the default everywhere.
CONTRACTS: dict[str, Contract] = {c.name: c for c in (REVERSE, SCALE, STOP, STE_ROUND, STE_SIGN)}
DEFAULT_CONTRACT = REVERSE.name


def resolve_contract(contract: str | Contract | None) -> Contract:
    """A built-in name, a ``package.module:NAME`` spec naming a :class:`Contract`, or a Contract
    itself → the Contract (``None``: ``reverse``). Raises :class:`ContractError` in one sentence."""
    if contract is None:
        return REVERSE
    if isinstance(contract, Contract):
        return _own_name(contract)
    if not isinstance(contract, str):
        raise ContractError(f"a contract is a built-in name ({', '.join(CONTRACTS)}), a "
                            f"package.module:NAME spec or a Contract; got {type(contract).__name__}")
    if contract in CONTRACTS:
        return CONTRACTS[contract]
    if ":" not in contract:
        raise ContractError(f"unknown contract {contract!r}: built in are {', '.join(CONTRACTS)}; "
                            "name your own as package.module:NAME")
    module_name, _, attr = contract.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except BaseException as exc:  # noqa: BLE001 - a user's import may raise anything
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ContractError(f"importing {module_name!r} for the contract failed: "
                            f"{type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, Contract):
        what = "nothing" if found is None else f"a {type(found).__name__}"
        raise ContractError(f"{contract!r} names {what}, not a grl_props.contracts.Contract")
    return _own_name(found)


def _own_name(contract: Contract) -> Contract:
    """``contract``, refused when it borrows a built-in's name (names decide the battery)."""
    if contract.name in CONTRACTS and CONTRACTS[contract.name] is not contract:
        raise ContractError(f"a contract of your own needs a name other than the built-in "
                            f"{contract.name!r} (built in are {', '.join(CONTRACTS)})")
    return contract


def verdict_not_run(contract: Contract) -> str | None:
    """Why the statistical verdict does not run under ``contract`` (one sentence), or ``None``
    under ``reverse``: it judges label removal through a reversal, which only ``reverse``
    promises."""
    if contract is REVERSE:
        return None
    return ("statistical verdict not run: it judges whether training through a gradient reversal "
            f"removes a label, which the {contract.name} contract does not promise")


def contract_reference(contract: Contract) -> str | None:
    """A string :func:`resolve_contract` turns back into ``contract`` in another process: the
    built-in name, or ``module:NAME`` of the module-level name it is bound to (looked for in the
    modules defining its VJP and forward maps); ``None`` when it has none."""
    if CONTRACTS.get(contract.name) is contract:
        return contract.name
    for function in (contract.vjp, contract.forward):
        module = sys.modules.get(getattr(function, "__module__", None) or "")
        if module is None:
            continue
        for name, value in vars(module).items():
            if value is contract:
                return f"{module.__name__}:{name}"
    return None


class _ContractFunction(torch.autograd.Function):
    """The contract's own maps as a Function: forward, and the VJP in the gradient's dtype."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, alpha: float, contract: Contract) -> Tensor:
        return contract.expected_forward(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x, ctx.alpha, ctx.contract = inputs
        ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return ctx.contract.expected_vjp(x, grad, ctx.alpha), None, None


def reference_layer(contract: Contract, alpha: float = 1.0) -> Callable[[Tensor], Tensor]:
    """A layer keeping ``contract`` exactly, by construction (the expected values of the
    properties, run through autograd): used where a property compares a model's gradients."""
    return lambda x: _ContractFunction.apply(x, float(alpha), contract)
