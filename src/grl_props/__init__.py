"""grl-props: property-based and statistical tests for gradient reversal layers.

``GradientReversal`` and ``gradient_reversal`` (the reference layer) and ``diagnose`` are loaded
on first use, so that importing the package (as pytest does for the plugin) does not import
torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GradientReversal", "diagnose", "gradient_reversal", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("GradientReversal", "gradient_reversal"):
        from grl_props import reference

        return getattr(reference, name)
    if name == "diagnose":
        from grl_props.diagnosis import diagnose

        return diagnose
    raise AttributeError(f"module 'grl_props' has no attribute {name!r}")
