"""grl-props: property-based and statistical tests for gradient reversal layers."""

from grl_props.reference import GradientReversal, gradient_reversal

__all__ = ["GradientReversal", "gradient_reversal", "__version__"]
__version__ = "0.1.0"
