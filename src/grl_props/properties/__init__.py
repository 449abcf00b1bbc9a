"""The property battery: every invariant a gradient reversal layer must keep, by tier.

A property is one function in one module of this package, registered with :func:`register`::

    @register("core", "forward returns the input bit for bit", given={"case": gs.tensor_cases()},
              remedy="Return x.clone() from forward and change nothing on the way.")
    def forward_identity(layer: LayerUnderTest, case: TensorCase) -> None:
        ...  # raise AssertionError with a precise message when the layer breaks it

``given`` maps argument names to Hypothesis strategies (omit it for a check run once);
``examples`` lists explicit draws (dicts of the same names) run first at every seed, so a bug
confined to one dtype is caught whatever the seed;
``requires`` names preconditions (:data:`REQUIREMENTS`) that, when unmet, skip with a reason;
``remedy`` is one sentence telling the layer's author what to change when the property fails
(shown under every failure; every registered property has one); ``{forward}``, ``{backward}``
and ``{jvp}`` in it are filled with the layer's contract's code (:meth:`Property.remedy_for`).
A check may also raise :class:`Skip`. The order of :data:`FAMILIES` and of registration fixes display order.

*Contracts.* A property is written once against the layer's contract (``layer.contract``, a
:class:`grl_props.contracts.Contract`): it asks the contract for the expected output and gradient.
``contracts`` names the contract traits (:data:`CONTRACT_TRAITS`) it needs; a property applies to
a contract that has them all (:meth:`Property.applies_to`), and the battery for a contract is the
properties that apply to it (:func:`all_properties`). A property that does not apply to the
layer's contract is not run and not counted: it is no part of that contract's battery.

Every skip has a kind (:data:`SKIP_KINDS`), so that results can count apart what was not checked
for which reason: ``not_claimed`` (the layer does not claim the support the property checks),
``needs_cuda`` (no CUDA device here) and ``not_applicable`` (the property does not apply to this
kind of layer, e.g. a function has no ``state_dict``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis.strategies import SearchStrategy

from grl_props.adapters import LayerUnderTest
from grl_props.contracts import REVERSE, Contract

__all__ = ["CONTRACT_TRAITS", "REQUIREMENTS", "SKIP_KINDS", "TIERS", "Property", "Skip", "SkipKind",
           "all_properties", "get", "register"]

Tier = Literal["core", "compat", "hygiene"]
TIERS: tuple[Tier, ...] = ("core", "compat", "hygiene")

SkipKind = Literal["not_claimed", "needs_cuda", "not_applicable"]
SKIP_KINDS: tuple[SkipKind, ...] = ("not_claimed", "needs_cuda", "not_applicable")


class Skip(Exception):
    """Raised by a check that does not apply to this layer; the message is the reason."""

    def __init__(self, reason: str, kind: SkipKind = "not_applicable") -> None:
        super().__init__(reason)
        self.kind: SkipKind = kind


def _cuda_available(layer: LayerUnderTest) -> bool:
    import torch

    return torch.cuda.is_available()  # asked where the property runs (a child process), not before


def _claim_requirement(claim: str, support: str) -> tuple[Callable[[LayerUnderTest], bool], str, SkipKind]:
    return (
        lambda layer: claim in layer.claims,
        f"not claimed: the layer does not claim {support} support (claim it with "
        f"__grl_props_claims__ = ({claim!r},) on the layer, or --claim {claim})",
        "not_claimed",
    )


#: Preconditions a property may require: name → (test on the layer, reason when unmet, skip kind).
REQUIREMENTS: dict[str, tuple[Callable[[LayerUnderTest], bool], str, SkipKind]] = {
    "any_alpha": (
        lambda layer: layer.any_alpha,
        "the layer is an instance with a fixed alpha; this property needs other alphas",
        "not_applicable",
    ),
    "cuda": (_cuda_available, "needs CUDA: this machine has no CUDA device", "needs_cuda"),
    "claims_torchscript": _claim_requirement("torchscript", "TorchScript (torch.jit.script)"),
    "claims_torch_export": _claim_requirement("torch_export", "torch.export"),
}


#: Contract traits a property may need: name → test on the contract.
CONTRACT_TRAITS: dict[str, Callable[[Contract], bool]] = {
    "reverse": lambda c: c.name == REVERSE.name,
    "not_reverse": lambda c: c.name != REVERSE.name,
    "identity_forward": lambda c: c.forward_is_identity,
    "mapped_forward": lambda c: not c.forward_is_identity,
    "alpha": lambda c: c.takes_alpha,
    "gradient_flows": lambda c: not c.zero_gradient,
    "input_free_vjp": lambda c: not c.vjp_reads_input,
    "linear_in_v": lambda c: c.linear_in_v,
}


@dataclass(frozen=True)
class Property:
    """A named invariant: ``check(layer, **drawn)`` raises ``AssertionError`` when it is broken.

    ``remedy``: one sentence, what to change in the layer when the property fails.
    """

    name: str
    tier: Tier
    description: str
    check: Callable[..., None]
    given: Mapping[str, SearchStrategy[Any]] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    examples: tuple[Mapping[str, Any], ...] = ()
    remedy: str = ""
    contracts: tuple[str, ...] = ()

    def description_for(self, contract: Contract) -> str:
        """The description with the contract's maps in words (``{forward}`` → ``the identity``,
        ``{vjp}`` → ``-alpha·v`` under ``reverse``)."""
        if "{" not in self.description:
            return self.description
        return self.description.format(forward=contract.forward_text, vjp=contract.vjp_text)

    def remedy_for(self, contract: Contract) -> str:
        """The remedy with the contract's code filled in (``{backward}`` → ``grad * -alpha``
        under ``reverse``, ``grad * alpha`` under ``scale``; see :meth:`Contract.code_words`)."""
        return self.remedy.format_map(contract.code_words()) if "{" in self.remedy else self.remedy

    def applies_to(self, contract: Contract) -> bool:
        """Whether ``contract`` has every trait this property needs (:data:`CONTRACT_TRAITS`)."""
        return all(CONTRACT_TRAITS[trait](contract) for trait in self.contracts)

    def skip_reason(self, layer: LayerUnderTest) -> tuple[str, SkipKind] | None:
        """Why this property does not apply to ``layer`` and the kind of skip, or ``None``."""
        for requirement in self.requires:
            holds, reason, kind = REQUIREMENTS[requirement]
            if not holds(layer):
                return reason, kind
        return None


_REGISTRY: dict[str, Property] = {}


def register(tier: Tier, description: str, *, given: Mapping[str, SearchStrategy[Any]] | None = None,
             requires: tuple[str, ...] = (), examples: tuple[Mapping[str, Any], ...] = (),
             remedy: str = "", contracts: tuple[str, ...] = ()
             ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register the decorated check as a property named after the function; ``remedy`` says in
    one sentence what to change in a layer that fails it (``tests/properties`` requires one);
    ``contracts`` names the contract traits it needs (default: every contract)."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    unknown = set(requires) - set(REQUIREMENTS)
    if unknown:
        raise ValueError(f"unknown requirements {sorted(unknown)}; known: {sorted(REQUIREMENTS)}")
    unknown = set(contracts) - set(CONTRACT_TRAITS)
    if unknown:
        raise ValueError(f"unknown contract traits {sorted(unknown)}; known: {sorted(CONTRACT_TRAITS)}")

    def decorate(check: Callable[..., None]) -> Callable[..., None]:
        registered = check.__name__
        known = _REGISTRY.get(registered)
        if known is not None and known.check.__module__ != check.__module__:
            raise ValueError(f"property {registered!r} is registered by {known.check.__module__} "
                             f"and {check.__module__}")
        # the same module imported again (pytester restores sys.modules) re-registers in place
        _REGISTRY[registered] = Property(registered, tier, description, check, dict(given or {}),
                                         requires, tuple(examples), remedy, tuple(contracts))
        return check

    return decorate


def all_properties(tiers: tuple[str, ...] = TIERS, contract: Contract | None = REVERSE
                   ) -> list[Property]:
    """Registered properties of ``tiers`` that apply to ``contract`` (``None``: every registered
    property), grouped by tier in :data:`TIERS` order."""
    _load()
    return [p for tier in TIERS if tier in tiers for p in _REGISTRY.values()
            if p.tier == tier and (contract is None or p.applies_to(contract))]


def get(name: str) -> Property:
    """The property called ``name``; ``KeyError`` names the known ones."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no property {name!r}; known: {', '.join(_REGISTRY)}") from None


#: Modules holding the properties, in display order.
FAMILIES = ("forward", "backward", "hygiene", "compat")


def _load() -> None:
    for family in FAMILIES:
        importlib.import_module(f"grl_props.properties.{family}")
