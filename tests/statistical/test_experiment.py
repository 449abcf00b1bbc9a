"""Verdicts on the reference experiment, both adversary families: the reference layer passes,
broken layers fail, a blind experiment is invalid.

Fixed seeds (seed set 0) and the default contract; every verdict here can come out otherwise.
The control arm of a config and seed set is trained once per process and shared.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from grl_stats_helpers import BROKEN_LAYERS  # this directory is on sys.path under pytest

from grl_props.adapters import load_layer
from grl_props.experiment import ExperimentConfig, SimulationConfig, TrainConfig, seed_set
from grl_props.label_removal import StatisticalError, check_label_removal
from grl_props.report import MARKER, ReportError, write_report


@pytest.fixture(scope="module", params=["linear", "mlp"])
def reference_result(request):
    torch.set_num_threads(1)
    calls: list[tuple[str, int, int]] = []
    result = check_label_removal(load_layer("grl_props:GradientReversal"), seed=0,
                                 adversary=request.param, progress=lambda *a: calls.append(a))
    return result, calls


def test_reference_layer_passes(reference_result):
    result, _ = reference_result
    family = {"linear": "linear", "mlp": "MLP"}[result.adversary]
    assert result.verdict == "pass", result.summary()
    assert result.summary().startswith(f"label removed for {family} probes: pass")
    assert result.detail.n_leaking < result.detail.fail_count
    assert "one instance per seed, alpha set through set_alpha()" in result.alpha_note


def test_result_json_says_what_was_judged(reference_result):
    result, _ = reference_result
    js = json.loads(json.dumps(result.to_json()))
    judged = {"linear": "logistic", "mlp": "mlp"}[result.adversary]
    assert js["verdict"] == "pass" and js["seeds"] == seed_set(0, 9)
    assert js["adversary"] == result.adversary and js["judged_probe"] == judged
    assert js["measure"] == "usable_information_bits" and js["null"] == "permutation"
    assert set(js["contract"]) >= {"tau", "delta", "false_fail_rate", "false_pass_rate"}
    assert len(js["leakage"]) == 9 and len(js["control_leakage"]) == 9
    assert min(js["control_leakage"]) > js["contract"]["tau"] + js["contract"]["delta"]
    for seed in js["per_seed"]:
        bits = seed["usable_information_bits"]
        assert set(bits) == {"reversal", "control", "shuffled reversal", "shuffled control"}
        assert seed["leakage"]["reversal"] == pytest.approx(
            bits["reversal"] - bits["shuffled reversal"])
    assert [s["leakage"]["reversal"] for s in js["per_seed"]] == js["leakage"]


def test_progress_reports_every_stage(reference_result):
    _, calls = reference_result
    stages = {stage for stage, _, _ in calls}
    assert stages <= {"training reversal", "training control", "probing"}
    assert "training reversal" in stages and ("probing", 9, 9) in calls
    assert all(done <= total for _, done, total in calls)


def test_control_arm_is_trained_once_per_config_and_seed_set(reference_result):
    result, _ = reference_result
    calls: list[str] = []
    again = check_label_removal(load_layer("grl_props:gradient_reversal"), seed=0,
                                adversary=result.adversary,
                                progress=lambda stage, *_: calls.append(stage))
    assert "training control" not in calls and "training reversal" in calls
    assert again.detail.control_leakage == result.detail.control_leakage


def test_report_writes_and_refuses_foreign_files(reference_result, tmp_path):
    result, _ = reference_result
    index = write_report(result, tmp_path / "r")
    text = index.read_text()
    assert text.startswith(MARKER) and "pass" in text and "usable information" in text
    for name in ("latents.svg", "probe_bits.svg", "leakage.svg", "training.svg"):
        svg = (tmp_path / "r" / name).read_text()
        assert svg.startswith(MARKER + "\n<svg") and svg.rstrip().endswith("</svg>")
        assert f'src="{name}"' in text
    assert "H(Y) = 0.73 nats (chance)" in (tmp_path / "r" / "training.svg").read_text()
    legend = re.findall(r"class (\d) \((\d+)%\)", (tmp_path / "r" / "latents.svg").read_text())
    assert {c for c, _ in legend} == {"0", "1", "2"}  # the class legend, with frequencies
    assert "≥ τ+Δ = 0.2" in (tmp_path / "r" / "leakage.svg").read_text()
    assert not (tmp_path / "r" / "checkpoints.svg").exists()  # check scores no checkpoints
    assert write_report(result, tmp_path / "r") == index  # ours: may be rewritten
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "index.html").write_text("<html>someone else's</html>")
    with pytest.raises(ReportError, match="not written by grl-props"):
        write_report(result, foreign)
    assert (foreign / "index.html").read_text() == "<html>someone else's</html>"


def test_a_report_without_matplotlib_is_refused_in_one_sentence_before_any_run(
        tmp_path, capsys, monkeypatch):
    from grl_props.cli import EXIT_USAGE, main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code = main(["check", "grl_props:GradientReversal", "--no-properties",
                 "--report", str(tmp_path / "r")])
    assert code == EXIT_USAGE
    assert capsys.readouterr().err.strip() == (
        "grl-props: error: --report draws its plots with matplotlib, which is not installed: "
        "pip install 'grl-props[report]'")
    assert not (tmp_path / "r").exists()


# The MLP family trains slower; there, the broken layers that test the new machinery.
_CASES = [("linear", name) for name in sorted(BROKEN_LAYERS)] + [
    ("mlp", name) for name in ("every_other_call", "half_reversed", "no_reversal")]


@pytest.mark.parametrize("adversary,name", _CASES)
def test_broken_layer_fails(adversary, name):
    result = check_label_removal(load_layer(BROKEN_LAYERS[name]), seed=0, adversary=adversary)
    assert result.verdict == "fail", result.summary()


def test_no_label_signal_is_invalid():
    config = ExperimentConfig(simulation=SimulationConfig(effect_size=0.0))
    result = check_label_removal(load_layer("grl_props:GradientReversal"), seed=0, config=config)
    assert result.verdict == "invalid", result.summary()


def test_layer_sees_each_seed_on_its_own_and_keeps_its_instance():
    seen: list[tuple[int, tuple[int, ...]]] = []

    class Recording(torch.nn.Module):
        def __init__(self, alpha: float = 1.0) -> None:
            super().__init__()
            self.alpha = alpha

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((id(self), tuple(x.shape)))
            from grl_props import gradient_reversal
            return gradient_reversal(x, self.alpha)

    short = ExperimentConfig(train=TrainConfig(steps=3))
    result = check_label_removal(load_layer(Recording), config=short)
    assert {shape for _, shape in seen} == {(128, 4)}          # one seed's mini-batch, never (S, n, k)
    assert len({i for i, _ in seen}) == 9 and len(seen) == 27  # one instance per seed, kept
    assert "alpha set through alpha = " in result.alpha_note


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
        check_label_removal(load_layer(layer), config=ExperimentConfig(train=TrainConfig(steps=5)))
    assert "_raising" in str(info.value) or "_wrong_shape" in str(info.value)


def test_nan_layer_fails():
    short = ExperimentConfig(train=TrainConfig(steps=20))
    result = check_label_removal(load_layer(_nan), config=short)
    assert result.verdict == "fail"
    assert np.isnan(result.detail.leakage).all()


def test_unknown_adversary_is_one_sentence():
    with pytest.raises(StatisticalError, match="adversary must be one of linear, mlp"):
        check_label_removal(load_layer("grl_props:GradientReversal"), adversary="transformer")


def test_another_family_can_be_judged_only_by_name():
    config = ExperimentConfig(adversary="linear", judge="mlp")
    assert [p.name for p in config.probes] == ["mlp", "logistic"]
    with pytest.raises(ValueError, match="judge must be one of logistic, mlp"):
        ExperimentConfig(judge="svm")


def test_family_recipes_differ_and_the_probe_follows_the_family():
    linear, mlp = ExperimentConfig(adversary="linear"), ExperimentConfig(adversary="mlp")
    assert linear.judged_probe.name == "logistic" and mlp.judged_probe.name == "mlp"
    assert [p.name for p in mlp.probes] == ["mlp", "logistic"]
    assert linear.training != mlp.training
    assert replace(linear, adversary="mlp", train=None) == mlp == linear.with_family("mlp")
