"""``grl-props check``: exit codes, the JSON contract, and survival of misbehaving layers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grl_props.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, main
from grl_props.properties import all_properties

HERE = Path(__file__).parent
LAYERS = HERE / "misbehaving_layers.py"
FAST = ["--no-stats", "--max-examples", "10"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def statuses(path: Path) -> dict[str, str]:
    (result,) = json.loads(path.read_text())["results"]
    return {p["name"]: p["status"] for p in result["properties"]}


def test_reference_layer_passes_every_tier_and_writes_the_json_contract(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, _ = run(capsys, "grl_props:GradientReversal", "--tier", "all", "--json", str(target), *FAST)
    assert code == EXIT_OK, out
    payload = json.loads(target.read_text())
    (result,) = payload["results"]
    assert set(result) == {"spec", "ok", "properties", "statistical"}
    assert result["ok"] is True and result["statistical"] is None
    names = [p["name"] for p in result["properties"]]
    assert names == [p.name for p in all_properties()]
    for prop in result["properties"]:
        assert set(prop) == {"name", "tier", "status", "detail"}
        assert prop["tier"] in ("core", "compat", "hygiene")
        assert prop["status"] in ("pass", "skip"), prop
    assert "core ok (required)" in out


@pytest.mark.parametrize(
    ("name", "status"),
    [("Raises", "error"), ("ReturnsList", "fail"), ("WrongShape", "fail")],
)
def test_a_misbehaving_layer_gets_statuses_not_a_crash(name, status, tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, err = run(capsys, f"{LAYERS}:{name}", "--json", str(target), *FAST)
    assert code == EXIT_FAIL
    assert "Traceback" not in out + err
    assert statuses(target)["forward_identity"] == status
    assert f"{name}: core FAILED" in out


def test_a_layer_that_does_not_reverse_fails_core_with_a_counterexample(tmp_path, capsys):
    code, out, _ = run(capsys, f"{LAYERS}:no_reversal", *FAST)
    assert code == EXIT_FAIL
    assert "FAIL core/vjp_is_negative_alpha_v" in out
    assert "Counterexample: vjp_is_negative_alpha_v(" in out and "case=VJPCase(" in out


def test_a_hanging_layer_times_out_per_property(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, _, _ = run(capsys, f"{LAYERS}:Hangs", "--timeout", "2", "--json", str(target), *FAST)
    assert code == EXIT_FAIL
    found = statuses(target)
    assert found["forward_identity"] == "error"
    assert set(found.values()) <= {"error", "skip", "pass"}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("no_colon_here", "expected a spec of the form"),
        ("no_such_package.module:Layer", "importing 'no_such_package.module' failed"),
        (f"{LAYERS}:NOT_A_LAYER", "expected an nn.Module subclass"),
        (f"{LAYERS}:Missing", "has no attribute 'Missing'"),
        ("does/not/exist.py:Layer", "does not exist"),
    ],
)
def test_bad_specs_get_one_sentence_and_exit_2(spec, words, capsys):
    code, out, err = run(capsys, spec, *FAST)
    assert code == EXIT_USAGE
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_json_refuses_to_overwrite_a_file_it_did_not_write(tmp_path, capsys):
    target = tmp_path / "notes.json"
    target.write_text('{"mine": true}\n')
    code, _, err = run(capsys, "grl_props:GradientReversal", "--json", str(target), *FAST)
    assert code == EXIT_USAGE and "refusing to overwrite" in err
    assert target.read_text() == '{"mine": true}\n'


def test_closing_line_names_only_what_ran(capsys):
    code, out, _ = run(capsys, "grl_props:GradientReversal", *FAST)
    assert out.rstrip().splitlines()[-1] == "grl_props:GradientReversal: core OK"
    code, out, _ = run(capsys, f"{LAYERS}:Raises", "--no-properties")  # training stops at step 1
    assert code == EXIT_FAIL
    assert out.rstrip().splitlines()[-1] == f"{LAYERS}:Raises: label removal error"


def test_nothing_to_run_is_a_usage_error(capsys):
    code, _, err = run(capsys, "--no-properties", "--no-stats")
    assert code == EXIT_USAGE and "nothing to run" in err


def test_the_console_entry_point_prints_no_traceback():
    completed = subprocess.run(
        [sys.executable, "-m", "grl_props", "check", "no_such_package:Layer", "--no-stats"],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == EXIT_USAGE
    assert completed.stderr.startswith("grl-props: error: importing 'no_such_package' failed")
    assert "Traceback" not in completed.stderr


def test_report_never_overwrites_a_users_file(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "GradientReversal" / "index.html"
    mine.parent.mkdir()
    mine.write_text("my notes\n")

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before refusing the --report directory")

    monkeypatch.setattr("grl_props.statistical.check_label_removal", must_not_train)
    code, _, err = run(capsys, "grl_props:GradientReversal", "--no-properties", "--report", str(tmp_path))
    assert code == EXIT_USAGE and "was not written by grl-props" in err
    assert mine.read_text() == "my notes\n"
    in_the_way = tmp_path / "other"
    (in_the_way / "GradientReversal").parent.mkdir()
    (in_the_way / "GradientReversal").write_text("a file where the report folder would go\n")
    code, _, err = run(capsys, "grl_props:GradientReversal", "--no-properties", "--report", str(in_the_way))
    assert code == EXIT_USAGE and "is not a directory" in err
    assert (in_the_way / "GradientReversal").read_text().startswith("a file where")
