"""The property battery: every invariant a gradient reversal layer must keep, by tier.

A property is one function in one module of this package, registered with :func:`register`::

    @register("core", "forward returns the input bit for bit", given={"case": gs.tensor_cases()})
    def forward_identity(layer: LayerUnderTest, case: TensorCase) -> None:
        ...  # raise AssertionError with a precise message when the layer breaks it

``given`` maps argument names to Hypothesis strategies (omit it for a check run once);
``examples`` lists explicit draws (dicts of the same names) run first at every seed, so a bug
confined to one dtype is caught whatever the seed;
``requires`` names preconditions (:data:`REQUIREMENTS`) that, when unmet, skip with a reason.
A check may also raise :class:`Skip`. The order of :data:`FAMILIES` and of registration fixes display order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hypothesis.strategies import SearchStrategy

from grl_props.adapters import LayerUnderTest

__all__ = ["REQUIREMENTS", "TIERS", "Property", "Skip", "all_properties", "get", "register"]

Tier = Literal["core", "compat", "hygiene"]
TIERS: tuple[Tier, ...] = ("core", "compat", "hygiene")


class Skip(Exception):
    """Raised by a check that does not apply to this layer; the message is the reason."""


#: Preconditions a property may require: name → (test on the layer, reason when unmet).
REQUIREMENTS: dict[str, tuple[Callable[[LayerUnderTest], bool], str]] = {
    "any_alpha": (
        lambda layer: layer.any_alpha,
        "the layer is an instance with a fixed alpha; this property needs other alphas",
    ),
}


@dataclass(frozen=True)
class Property:
    """A named invariant: ``check(layer, **drawn)`` raises ``AssertionError`` when it is broken."""

    name: str
    tier: Tier
    description: str
    check: Callable[..., None]
    given: Mapping[str, SearchStrategy[Any]] = field(default_factory=dict)
    requires: tuple[str, ...] = ()
    examples: tuple[Mapping[str, Any], ...] = ()

    def skip_reason(self, layer: LayerUnderTest) -> str | None:
        """Why this property does not apply to ``layer``, or ``None``."""
        for requirement in self.requires:
            holds, reason = REQUIREMENTS[requirement]
            if not holds(layer):
                return reason
        return None


_REGISTRY: dict[str, Property] = {}


def register(tier: Tier, description: str, *, given: Mapping[str, SearchStrategy[Any]] | None = None,
             requires: tuple[str, ...] = (), examples: tuple[Mapping[str, Any], ...] = ()
             ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register the decorated check as a property named after the function."""
    if tier not in TIERS:
        raise ValueError(f"tier must be one of {TIERS}, got {tier!r}")
    unknown = set(requires) - set(REQUIREMENTS)
    if unknown:
        raise ValueError(f"unknown requirements {sorted(unknown)}; known: {sorted(REQUIREMENTS)}")

    def decorate(check: Callable[..., None]) -> Callable[..., None]:
        name = check.__name__
        known = _REGISTRY.get(name)
        if known is not None and known.check.__module__ != check.__module__:
            raise ValueError(f"property {name!r} is registered by {known.check.__module__} and "
                             f"{check.__module__}")
        # the same module imported again (pytester restores sys.modules) re-registers in place
        _REGISTRY[name] = Property(name, tier, description, check, dict(given or {}), requires,
                                   tuple(examples))
        return check

    return decorate


def all_properties(tiers: tuple[str, ...] = TIERS) -> list[Property]:
    """Registered properties of ``tiers``, grouped by tier in :data:`TIERS` order."""
    _load()
    return [p for tier in TIERS if tier in tiers for p in _REGISTRY.values() if p.tier == tier]


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
