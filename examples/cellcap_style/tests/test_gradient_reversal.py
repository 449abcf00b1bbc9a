"""The layer itself: grl-props' core properties, one test each, in one line."""

from cellcap_style.nn.gradient_reversal import GradientReverseModule

from grl_props.testing import conformance_suite

TestGradientReverseModule = conformance_suite(GradientReverseModule, statistical=False)
