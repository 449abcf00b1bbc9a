"""Verdicts on the reference experiment: the reference layer passes, broken layers fail.

Fixed seeds (seed set 0) and the default contract; every verdict here can come out otherwise.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from grl_stats_helpers import BROKEN_LAYERS  # this directory is on sys.path under pytest

from grl_props.adapters import load_layer
from grl_props.experiment import ExperimentConfig, SimulationConfig, TrainConfig, seed_set
from grl_props.report import MARKER, ReportError, write_report
from grl_props.statistical import StatisticalError, check_label_removal

FAST = replace(ExperimentConfig(), secondary_probe=None)  # the verdict uses the primary probe


@pytest.fixture(scope="module")
def reference_result():
    torch.set_num_threads(1)
    calls: list[tuple[str, int, int]] = []
    result = check_label_removal(load_layer("grl_props:GradientReversal"), seed=0,
                                 progress=lambda *a: calls.append(a))
    return result, calls


def test_reference_layer_passes(reference_result):
    result, _ = reference_result
    assert result.verdict == "pass", result.summary()
    assert result.summary().startswith("label removed: pass")
    assert result.detail.n_leaking < result.detail.fail_count


def test_result_is_json_and_complete(reference_result):
    result, _ = reference_result
    js = json.loads(json.dumps(result.to_json()))
    assert js["verdict"] == "pass" and js["seeds"] == seed_set(0, 9)
    assert set(js["contract"]) >= {"tau", "delta", "false_fail_rate", "false_pass_rate"}
    assert len(js["leakage"]) == 9 and len(js["control_leakage"]) == 9
    assert js["probe"] == "logistic" and len(js["secondary_leakage"]) == 9
    assert min(js["control_leakage"]) > js["contract"]["tau"] + js["contract"]["delta"]


def test_progress_reports_every_stage(reference_result):
    _, calls = reference_result
    stages = {stage for stage, _, _ in calls}
    assert stages == {"training reversal", "training control", "probing"}
    assert all(done <= total for _, done, total in calls)
    assert ("probing", 9, 9) in calls


def test_report_writes_and_refuses_foreign_files(reference_result, tmp_path):
    result, _ = reference_result
    index = write_report(result, tmp_path / "r")
    text = index.read_text()
    assert text.startswith(MARKER) and "pass" in text
    for name in ("latents.svg", "probe_f1.svg", "leakage.svg", "training.svg"):
        assert (tmp_path / "r" / name).read_text().count("<svg") >= 1
    assert write_report(result, tmp_path / "r") == index  # ours: may be rewritten
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.html").write_text("<html>someone else's</html>")
    with pytest.raises(ReportError, match="not written by grl-props"):
        write_report(result, foreign)
    assert (foreign / "index.html").read_text() == "<html>someone else's</html>"


@pytest.mark.parametrize("name", sorted(BROKEN_LAYERS))
def test_broken_layer_fails(name):
    result = check_label_removal(load_layer(BROKEN_LAYERS[name]), seed=0, config=FAST)
    assert result.verdict == "fail", result.summary()


def test_no_label_signal_is_invalid():
    config = replace(FAST, simulation=SimulationConfig(effect_size=0.0))
    result = check_label_removal(load_layer("grl_props:GradientReversal"), seed=0, config=config)
    assert result.verdict == "invalid", result.summary()


def _raising(x: torch.Tensor, alpha: float) -> torch.Tensor:
    raise RuntimeError("boom")


def _wrong_shape(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return x[..., :1]


def _nan(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return x * float("nan")


@pytest.mark.parametrize("layer,match", [(_raising, "raised RuntimeError: boom"),
                                         (_wrong_shape, "returned shape")])
def test_layer_errors_become_one_sentence(layer, match):
    with pytest.raises(StatisticalError, match=match) as info:
        check_label_removal(load_layer(layer), config=FAST)
    assert "_raising" in str(info.value) or "_wrong_shape" in str(info.value)


def test_nan_layer_fails():
    short = replace(FAST, train=TrainConfig(steps=20))
    result = check_label_removal(load_layer(_nan), config=short)
    assert result.verdict == "fail"
    assert np.isnan(result.detail.leakage).all()
