"""A small CellCap-style package: a gradient reversal layer, an adversary, a model."""

from cellcap_style.nn.advnet import AdvNet
from cellcap_style.nn.gradient_reversal import GradientReverseLayer, GradientReverseModule

__all__ = ["AdvNet", "GradientReverseLayer", "GradientReverseModule"]
