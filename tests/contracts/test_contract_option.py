"""``--contract`` on the command line, and ``contract=`` in the conformance suite: the issue's
done-when checks (a multiplier under ``scale``, rounding estimators under ``ste-round``) and a
user-defined contract named ``package.module:NAME``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from grl_props.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, main
from grl_props.contracts import SCALE
from grl_props.properties import all_properties
from grl_props.testing import conformance_suite

LAYERS = Path(__file__).parent / "sibling_layers.py"
FAST = ["--max-examples", "15"]


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def closing(out: str) -> dict[str, str]:
    """The closing line of each layer: spec → ``core OK`` / ``core FAILED``."""
    return dict(re.findall(r"^(\S+\.py:\w+): (core \w+)$", out, flags=re.M))


def test_scale_passes_a_multiplier_and_fails_one_that_reverses(capsys, tmp_path):
    target = tmp_path / "out.json"
    code, out, _ = check(capsys, f"{LAYERS}:GradMultiply", f"{LAYERS}:ReversingMultiply",
                         "--contract", "scale", "--json", str(target), *FAST)
    assert code == EXIT_FAIL
    assert closing(out) == {f"{LAYERS}:GradMultiply": "core OK",
                            f"{LAYERS}:ReversingMultiply": "core FAILED"}
    assert "contract: scale (forward the identity, VJP +alpha·v)" in out
    assert "statistical verdict not run" in out
    good, bad = json.loads(target.read_text())["results"]
    assert good["contract"] == bad["contract"] == "scale" and good["statistical"] is None
    assert [p["name"] for p in good["properties"]] == [p.name for p in all_properties(contract=SCALE)]
    failed = {p["name"]: p["detail"] for p in bad["properties"] if p["status"] == "fail"}
    assert "gradient ÷ v" in failed["vjp_matches_contract"]
    assert re.search(r"expected \+0?\.?\d", failed["vjp_matches_contract"]), failed
    assert "--contract scale" in out  # the replay command keeps the contract


def test_ste_round_fails_a_plain_round_and_a_floor_quantiser(capsys):
    code, out, _ = check(capsys, f"{LAYERS}:ste_round", f"{LAYERS}:plain_round",
                         f"{LAYERS}:floor_quantiser", "--contract", "ste-round", *FAST)
    assert code == EXIT_FAIL
    assert closing(out) == {f"{LAYERS}:ste_round": "core OK",
                            f"{LAYERS}:plain_round": "core FAILED",
                            f"{LAYERS}:floor_quantiser": "core FAILED"}
    assert "x = 0.5: expected 0.0, got 1.0" in out  # the tie the floor quantiser rounds up
    assert "(expected +1)" in out  # round's zero gradient where the identity was promised


def test_a_user_contract_named_by_spec_runs_in_child_processes(capsys, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    target = tmp_path / "out.json"
    code, out, _ = check(capsys, f"{LAYERS}:ClippedReversal", "--contract",
                         "user_contracts:CLIPPED_REVERSE", "--json", str(target), *FAST)
    assert code == EXIT_OK, out
    assert "contract: clipped-reverse" in out and "vjp_linear_in_v" not in out
    (result,) = json.loads(target.read_text())["results"]
    assert result["contract"] == "clipped-reverse"
    # the children loaded the contract by the spec given, from a fresh process (no fork fallback)
    assert result["isolation"].startswith("child process per property (forkserver"), result
    code, out, _ = check(capsys, f"{LAYERS}:ClippedReversal", "--no-stats", *FAST)
    assert code == EXIT_FAIL  # under reverse, clipping is the bug
    assert "core FAILED" in out


@pytest.mark.parametrize(("args", "words"), [
    (["--contract", "flip", f"{LAYERS}:ste_round"], "--contract: unknown contract 'flip'"),
    (["--contract", "scale"], "name the layers to check under the scale contract"),
    (["--contract", "stop", "--no-properties", f"{LAYERS}:ste_round"], "leaves nothing to run"),
    (["--contract", "stop", "--report", "r", f"{LAYERS}:ste_round"], "runs only under the reverse"),
])
def test_contract_usage_errors_are_one_sentence(capsys, args, words):
    code, out, err = check(capsys, *args)
    assert code == EXIT_USAGE and words in err and err.count("\n") == 1, err


def test_the_conformance_suite_takes_a_contract():
    suite = conformance_suite(f"{LAYERS}:GradMultiply", contract="scale", tiers=("core",))
    methods = {n for n in vars(suite) if n.startswith("test_")}
    expected = {f"test_{p.name}" for p in all_properties(("core",), contract=SCALE)}
    assert methods == expected | {"test_label_removed"}
    assert "test_vjp_matches_contract" in methods and "test_vjp_is_negative_alpha_v" not in methods
    with pytest.raises(ValueError, match="unknown contract 'flip'"):
        conformance_suite(f"{LAYERS}:GradMultiply", contract="flip")
    with pytest.raises(pytest.skip.Exception, match="statistical verdict not run"):
        suite().test_label_removed(None)
