"""``grl-props diagnose``: the layer, the training or the test — each conclusion provoked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grl_props.adapters import load_layer
from grl_props.cli import EXIT_FAIL, EXIT_OK, main
from grl_props.diagnosis import diagnose

HELPERS = Path(__file__).parent / "grl_stats_helpers.py"


def test_a_non_reversing_layer_is_the_layer_and_nothing_is_trained(tmp_path, capsys,
                                                                   monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("trained although a core property fails")

    monkeypatch.setattr("grl_props.diagnosis.check_label_removal", must_not_train)
    target = tmp_path / "diagnosis.json"
    code = main(["diagnose", f"{HELPERS}:no_reversal", "--json", str(target), "--report",
                 str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == EXIT_FAIL
    assert "report: not written — nothing was trained (conclusion: layer)" in out
    assert not (tmp_path / "r").exists()
    payload = json.loads(target.read_text())["diagnosis"]
    assert payload["conclusion"] == "layer" and payload["verdict"] is None
    layer, convergence, setup = payload["findings"]
    assert layer["hypothesis"] == "layer" and layer["supported"] is True
    assert "vjp_is_negative_alpha_v" in layer["evidence"] and "expected -1.0, got 1.0" in layer["evidence"]
    assert convergence["supported"] is None and setup["supported"] is None


def test_far_too_little_training_is_convergence(tmp_path, capsys):
    target = tmp_path / "diagnosis.json"
    code = main(["diagnose", "grl_props:GradientReversal", "--steps", "50", "--json",
                 str(target)])
    assert code == EXIT_FAIL
    payload = json.loads(target.read_text())["diagnosis"]
    assert payload["conclusion"] == "convergence", capsys.readouterr().out
    layer, convergence, setup = payload["findings"]
    assert layer["supported"] is False and "8 of 8 core properties pass" in layer["evidence"]
    assert convergence["supported"] and "the game has not settled" in convergence["evidence"]
    assert "at step 25" in convergence["evidence"] and "at step 38" in convergence["evidence"]
    assert payload["verdict"]["verdict"] == "fail"


def test_a_linear_adversary_judged_by_an_mlp_probe_is_the_setup():
    result = diagnose(load_layer("grl_props:GradientReversal"), adversary="linear", probe="mlp")
    assert result.conclusion == "setup", result.text()
    setup = result.findings[2]
    assert setup.supported and "stronger than the linear adversary" in setup.evidence


def test_the_reference_layer_at_defaults_is_none_and_the_report_shows_it(tmp_path, capsys):
    code = main(["diagnose", "grl_props:GradientReversal", "--report", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "conclusion: none" in out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<h2>Diagnosis</h2>" in page and "conclusion: none" in page
    checkpoints = (tmp_path / "r" / "checkpoints.svg").read_text()  # diagnose scores them
    assert 'src="checkpoints.svg"' in page and "judged leakage across training" in checkpoints


def test_a_report_of_the_users_is_refused_before_training(tmp_path, capsys, monkeypatch):
    (tmp_path / "index.html").write_text("mine\n")

    def must_not_run(*args, **kwargs):
        raise AssertionError("diagnosed before refusing the --report directory")

    monkeypatch.setattr("grl_props.diagnosis.diagnose", must_not_run)
    assert main(["diagnose", "grl_props:GradientReversal", "--report", str(tmp_path)]) == 2
    assert (tmp_path / "index.html").read_text() == "mine\n"
    assert "was not written by grl-props" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--steps", "0"], ["--probe", "svm"], ["--adversary", "x"]])
def test_bad_arguments_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as info:
        main(["diagnose", "grl_props:GradientReversal", *bad])
    assert info.value.code == 2
