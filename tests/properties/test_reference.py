"""The reference layer passes every property that can run on this machine.

Allowed skips, each of its kind: ``opcheck`` (not applicable: the reference calls no custom
operator), ``torchscript`` and ``torch_export`` (not claimed), ``autocast_cuda`` and
``runs_after_to_cuda`` (needs CUDA, on a machine without it); for the function form, also the
properties that need an ``nn.Module`` (parameters, state_dict, buffers; not applicable).
Every property that ran Hypothesis ran every example asked.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from grl_props.adapters import load_layer
from grl_props.properties import all_properties
from grl_props.runner import RunOptions, run_property

OPTIONS = RunOptions(isolate=False)
ALLOWED_SKIPS = {
    "opcheck": ("not_applicable", "calls no custom operator"),
    "torchscript": ("not_claimed", "does not claim TorchScript"),
    "torch_export": ("not_claimed", "does not claim torch.export"),
}
if not torch.cuda.is_available():
    ALLOWED_SKIPS |= {"autocast_cuda": ("needs_cuda", "needs CUDA"),
                      "runs_after_to_cuda": ("needs_cuda", "needs CUDA")}
MODULE_ONLY = {"no_trainable_parameters", "alpha_in_state_dict", "alpha_moved_by_to"}

SPECS = ("grl_props:GradientReversal", "grl_props.gradient_reversal")


def _cases() -> list[Any]:
    cases: list[Any] = []
    for spec in SPECS:
        for prop in all_properties():
            cases.append(pytest.param(spec, prop, id=f"{spec}-{prop.name}"))
    return cases


@pytest.mark.parametrize(("spec", "prop"), _cases())
def test_reference_passes(spec: str, prop: object) -> None:
    result = run_property(load_layer(spec), prop, OPTIONS)  # type: ignore[arg-type]
    if result.status == "skip":
        allowed = ALLOWED_SKIPS.get(result.name)
        if allowed is None and spec.endswith("gradient_reversal") and result.name in MODULE_ONLY:
            allowed = ("not_applicable", "not an nn.Module")
        assert allowed is not None and allowed[1] in result.detail, (
            f"{spec} skipped {result.name} unexpectedly: {result.detail}"
        )
        assert result.skip_kind == allowed[0], (result.name, result.skip_kind)
        return
    assert result.status == "pass", f"{spec} {result.name}: {result.status} {result.detail}"
    assert result.examples_run == result.examples_asked, result
