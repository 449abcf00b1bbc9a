"""``grl-props check``: exit codes, the JSON contract, and survival of misbehaving layers."""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from grl_props.cli import EXIT_FAIL, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main
from grl_props.matrix import Progress
from grl_props.properties import SKIP_KINDS, all_properties
from grl_props.runner import COUNTS

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
    assert set(result) == {"spec", "contract", "ok", "isolation", "summary", "properties",
                           "statistical"}
    assert result["contract"] == "reverse"
    assert result["ok"] is True and result["statistical"] is None
    assert result["isolation"].startswith("child process per property")
    names = [p["name"] for p in result["properties"]]
    assert names == [p.name for p in all_properties()]
    for prop in result["properties"]:
        assert set(prop) == {"name", "tier", "status", "detail", "skip", "examples", "remedy"}
        assert prop["remedy"] is None  # a remedy is given for failures only
        assert prop["tier"] in ("core", "compat", "hygiene")
        assert prop["status"] in ("pass", "skip"), prop
        assert (prop["skip"] in SKIP_KINDS) == (prop["status"] == "skip"), prop
        if prop["examples"] is not None:  # every example asked was run
            assert prop["examples"]["run"] == prop["examples"]["asked"] >= 10, prop
    skipped = {p["name"]: p["skip"] for p in result["properties"] if p["status"] == "skip"}
    assert skipped["torchscript"] == skipped["torch_export"] == "not_claimed"
    assert skipped["opcheck"] == "not_applicable"
    # the summary counts what was checked, and every skip apart, by reason
    for tier, counts in result["summary"].items():
        assert set(counts) == set(COUNTS)
        statuses = [p for p in result["properties"] if p["tier"] == tier]
        assert sum(counts.values()) == len(statuses)
        assert counts["pass"] == sum(p["status"] == "pass" for p in statuses)
        for kind in SKIP_KINDS:
            assert counts[f"skip_{kind}"] == sum(p["skip"] == kind for p in statuses)
    assert result["summary"]["compat"]["skip_not_claimed"] == 2
    assert "core (required)" in out and "8/8 pass" in out
    assert "skip (not claimed)" in out


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


#: The one line a failure shows first: the inputs, then expected and actual values.
VALUES = re.compile(r"^(?:x = (\S+), v = (\S+), )?alpha = (\S+): expected (.+), got (.+)$")


def smallest_failure_problems(detail: str) -> list[str]:
    """Why ``detail`` (a lost sign's failure) does not show its smallest failure first: one line
    "x = …, v = …, alpha = …: expected …, got …" of at most 4 elements before torch's statistics,
    and a counterexample of at most 4 elements."""
    lines = detail.splitlines()
    found = [i for i, line in enumerate(lines) if VALUES.match(line)]
    stats = [i for i, line in enumerate(lines) if line.startswith(("Scalars are", "Tensor-likes"))]
    if not found:
        return [f"no 'expected …, got …' line: {detail}"]
    if not stats or found[0] > stats[0]:
        return [f"the values line is not before the statistics: {detail}"]
    x, v, alpha, expected, got = VALUES.match(lines[found[0]]).groups()  # type: ignore[union-attr]
    numbers = [float(n) for n in re.findall(r"-?\d[\d.e+-]*", f"{expected} {got}")]
    half = len(numbers) // 2
    problems = []
    if len(numbers) % 2 or not 1 <= half <= 4:
        problems.append(f"more than 4 elements shown: {lines[found[0]]}")
    elif any(not math.isclose(e, -g) or e == 0 for e, g in zip(numbers[:half], numbers[half:], strict=True)):
        problems.append(f"expected and got are not of opposite sign: {lines[found[0]]}")
    block = detail.partition("Counterexample:")[2].partition("Also fails")[0]
    for shape in re.findall(r"shape=\(([\d, ]*)\)", block):
        size = math.prod(int(n) for n in shape.replace(",", " ").split())
        if size > 4:
            problems.append(f"a counterexample of {size} elements: {block}")
    return problems


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_lost_sign_shows_its_smallest_failure_first(seed, tmp_path, capsys, monkeypatch):
    """A GRL that forgot .neg(): the fixed cases fail first, but the shrunk case is what is shown
    (≤ 4 elements, one "expected …, got …" line), the fixed case after it, then the remedy."""
    only(monkeypatch, "vjp_is_negative_alpha_v", "model_gradients")
    target = tmp_path / "out.json"
    code, out, _ = run(capsys, f"{LAYERS}:LostSign", "--seed", str(seed), "--json", str(target),
                       *FAST)
    assert code == EXIT_FAIL
    (result,) = json.loads(target.read_text())["results"]
    for prop in result["properties"]:
        assert prop["status"] == "fail", prop
        assert smallest_failure_problems(prop["detail"]) == [], prop["detail"]
        first_line = next(line for line in prop["detail"].splitlines() if VALUES.match(line))
        assert first_line in out
        assert prop["remedy"] and f"remedy: {prop['remedy']}" in out
    vjp = result["properties"][0]["detail"]
    assert "Also fails on the fixed case (case: x and v of shape (3, 4) float32" in vjp
    assert "alpha=alpha=" not in out
    assert out.rstrip().splitlines()[-1] == (
        f"replay: grl-props check {LAYERS}:LostSign --seed {seed} --max-examples 10 --no-stats")


def test_the_smallest_failure_check_bites():
    fixed_case_only = ("VJP(v) with alpha=0.3 is not as expected (within rtol=1.3e-06, atol=1e-05).\n"
                       "at index (0, 0): x = 1.5, v = -600.0, alpha = 0.3: expected 180.0, got "
                       "-180.0\nTensor-likes are not close!\n\nMismatched elements: 8 / 12\n"
                       "Counterexample: vjp_is_negative_alpha_v(\n    case=VJPCase(x: shape=(3, 4) "
                       "dtype=float32; v: shape=(3, 4); alpha=0.3),\n)")
    assert smallest_failure_problems(fixed_case_only) != []
    statistics_first = "Scalars are not equal!\nx = 0.0, v = 1.0, alpha = 1.0: expected -1.0, got 1.0"
    assert smallest_failure_problems(statistics_first) != []
    right = "x = 0.0, v = 1.0, alpha = 1.0: expected -1.0, got 1.0\nScalars are not equal!"
    assert smallest_failure_problems(right) == []
    assert smallest_failure_problems(right.replace("got 1.0", "got -1.0")) != []


def test_a_layer_that_always_hangs_is_timed_out_once(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, _ = run(capsys, f"{LAYERS}:Hangs", "--timeout", "2", "--json", str(target), *FAST)
    assert code == EXIT_FAIL
    (result,) = json.loads(target.read_text())["results"]
    sentence = ("the layer hangs: grl-props' first call of it (forward and backward on a float32 "
                "tensor of shape (2, 3)) gave no result within 2 s")
    assert {(p["status"], p["detail"]) for p in result["properties"]} == {
        ("error", f"not run: {sentence}")}
    assert out.count(sentence) == 1


def test_a_hanging_layer_times_out_per_property(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, _, _ = run(capsys, f"{LAYERS}:HangsOnFloat64", "--timeout", "2", "--json", str(target),
                     *FAST)
    assert code == EXIT_FAIL
    (result,) = json.loads(target.read_text())["results"]
    details = {p["name"]: (p["status"], p["detail"]) for p in result["properties"]}
    timed_out = "no result within 2 s: the layer hangs or is far too slow"
    assert details["forward_identity"] == ("error", timed_out)
    assert details["vjp_is_negative_alpha_v"] == ("error", timed_out)
    # after two time-outs the rest is not run (each would hang), and says so
    not_run = "not run: the layer already hung in forward_identity and vjp_is_negative_alpha_v"
    rest = [detail for name, detail in details.items()
            if name not in ("forward_identity", "vjp_is_negative_alpha_v")]
    assert rest and all(detail == ("error", not_run) for detail in rest), rest


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


def test_json_may_overwrite_an_empty_file_but_no_other_file_it_did_not_write(tmp_path, capsys,
                                                                           monkeypatch):
    """``--json "$(mktemp)"`` works; a file with content that grl-props did not write is still
    refused, with the same sentence."""
    only(monkeypatch, "forward_identity")
    handle, name = tempfile.mkstemp(dir=tmp_path)  # what mktemp makes: empty, mode 0600
    os.close(handle)
    code, _, err = run(capsys, "grl_props:GradientReversal", "--json", name, *FAST)
    assert code == EXIT_OK, err
    assert json.loads(Path(name).read_text())["tool"] == "grl-props"
    assert stat.S_IMODE(Path(name).stat().st_mode) == 0o600  # its mode is kept
    mine = tmp_path / "mine.json"
    for content in ("x", "\n", '{"tool": "someone else"}\n'):
        mine.write_text(content)
        code, out, err = run(capsys, "grl_props:GradientReversal", "--json", str(mine), *FAST)
        assert code == EXIT_USAGE and out == ""
        assert err == (f"grl-props: error: --json {str(mine)!r} exists and was not written by "
                       "grl-props; refusing to overwrite it\n")
        assert mine.read_text() == content


@pytest.mark.parametrize(("option", "value", "words"), [
    ("--max-examples", "abc", "must be a whole number of at least 1, got 'abc'"),
    ("--max-examples", "0", "must be a whole number of at least 1, got '0'"),
    ("--max-examples", "1.5", "must be a whole number of at least 1, got '1.5'"),
    ("--seed", "-1", "must be a whole number of 0 or more, got '-1'"),
    ("--seed", "x", "must be a whole number of 0 or more, got 'x'"),
])
def test_argument_errors_name_no_internals(option, value, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "grl_props:GradientReversal", option, value])
    assert info.value.code == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"argument {option}: {words}" in err
    assert "_positive_int" not in err and "_nonnegative_int" not in err and "Traceback" not in err


def test_a_layer_that_cannot_run_is_told_once_with_one_status(tmp_path, capsys):
    target = tmp_path / "out.json"
    code, out, _ = run(capsys, f"{LAYERS}:Raises", "--json", str(target), *FAST)
    assert code == EXIT_FAIL
    line = next(n for n, text in enumerate(LAYERS.read_text().splitlines(), 1)
                if "broken on purpose" in text)
    sentence = ("the layer cannot run: called on a float32 tensor of shape (2, 3), it raised "
                f"RuntimeError: this layer is broken on purpose (at {LAYERS}:{line}, in forward)")
    (result,) = json.loads(target.read_text())["results"]
    assert {(p["status"], p["detail"]) for p in result["properties"]} == {
        ("error", f"not run: {sentence}")}  # no pass, no fail: the same in every tier
    assert out.count("this layer is broken on purpose") == 1 and sentence in out
    rows = [line for line in out.splitlines() if line.startswith(("core ", "compat ", "hygiene "))]
    assert len(rows) == len(all_properties()) and all(row.rstrip().endswith("ERROR") for row in rows)


def test_a_class_that_is_no_reversal_is_called_that_in_one_sentence(capsys):
    code, out, _ = run(capsys, "torch.nn:Linear", "--alpha-arg", "in_features", *FAST)
    assert code == EXIT_FAIL
    assert out.count("torch.nn:Linear is not a gradient reversal layer that grl-props can "
                     "build: Linear(in_features=1.0) raised TypeError: ") == 1
    assert "adapters.py" not in out


def test_warnings_are_collected_and_shown_once_after_the_matrix(capsys, monkeypatch):
    only(monkeypatch, "forward_identity", "vjp_is_negative_alpha_v", "repeatable")
    code, out, err = run(capsys, f"{LAYERS}:Warns", *FAST)
    assert code == EXIT_OK
    python = "UserWarning: the Warns layer warns from Python ("
    cpp = "[Fake.cpp:82] Warning: a C++ warning of the Warns layer (function fake)"
    assert out.count(python) == 1 and out.count(cpp) == 1, out
    assert out.index("warnings while the properties ran") > out.index("core (required)")
    assert "Warns layer" not in err  # never inside the progress lines
    assert "(from Warns forward_identity and 2 more)" in out


def test_collected_output_takes_what_goes_to_stderr():
    from grl_props.runner import _collected_output

    into: list[str] = []
    with _collected_output(into):
        os.write(2, b"[W1129 03:40:16.4 X.cpp:1] Warning: w (function f)\n")
        import warnings

        warnings.warn("python warning", UserWarning, stacklevel=1)
    assert into[0].startswith("UserWarning: python warning (")
    assert into[1] == "[X.cpp:1] Warning: w (function f)"


def test_what_goes_to_stderr_is_cut_into_messages_without_times():
    from grl_props.runner import _messages

    text = ("W1129 03:56:47.825000 23654 torch/fx/a.py:8866] Unable to find user code\n\n"
            "def forward(self, x):\n" + "    line\n" * 9
            + "[W1129 03:40:16.436401762 B.cpp:82] Warning: slow (function f)\n")
    assert _messages(text) == [
        "[torch/fx/a.py:8866] Unable to find user code\ndef forward(self, x):\n" + "    line\n" * 4
        + "... (5 more lines)",
        "[B.cpp:82] Warning: slow (function f)"]
    assert _messages("plain text\nmore\n") == ["plain text\nmore"]


def test_closing_line_names_only_what_ran(capsys):
    code, out, _ = run(capsys, "grl_props:GradientReversal", *FAST)
    assert out.rstrip().splitlines()[-1] == "grl_props:GradientReversal: core OK"
    code, out, _ = run(capsys, f"{LAYERS}:Raises", "--no-properties")  # training stops at step 1
    assert code == EXIT_FAIL
    closing, replay = out.rstrip().splitlines()[-2:]
    assert closing == f"{LAYERS}:Raises: label removal error"
    assert replay == (f"replay: grl-props check {LAYERS}:Raises --seed 0 --no-properties "
                      "--adversary linear")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", ""])
def test_timeout_must_be_seconds_above_zero(value, capsys):
    code, out, err = run(capsys, "grl_props:GradientReversal", "--timeout", value, *FAST)
    assert code == EXIT_USAGE and out == ""
    assert err == f"grl-props: error: --timeout must be a number of seconds above 0, got {value!r}\n"


def only(monkeypatch, *names):
    """Make the command run only the properties ``names`` (a full battery takes ~10 s)."""
    from grl_props.properties import get

    monkeypatch.setattr("grl_props.cli.all_properties", lambda **_: [get(n) for n in names])


def test_claim_runs_the_claimed_checks(tmp_path, capsys, monkeypatch):
    only(monkeypatch, "torchscript", "torch_export")
    target = tmp_path / "out.json"
    run(capsys, "grl_props:GradientReversal", "--tier", "compat", "--json", str(target), *FAST)
    assert statuses(target)["torchscript"] == statuses(target)["torch_export"] == "skip"
    run(capsys, "grl_props:GradientReversal", "--claim", "torchscript", "--claim", "torch_export",
        "--tier", "compat", "--json", str(target), *FAST)
    found = statuses(target)
    assert found["torchscript"] != "skip" and found["torch_export"] != "skip", found


def test_json_is_written_with_the_usual_mode_and_no_temporary_file_is_left(tmp_path, capsys,
                                                                           monkeypatch):
    only(monkeypatch, "forward_identity")
    target = tmp_path / "out.json"
    old_umask = os.umask(0o022)
    try:
        code, _, _ = run(capsys, "grl_props:GradientReversal", "--json", str(target), *FAST)
    finally:
        os.umask(old_umask)
    assert code == EXIT_OK
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # 0666 less the umask, not mkstemp's 0600
    target.chmod(0o640)  # a mode the user chose is kept when grl-props rewrites its own file
    run(capsys, "grl_props:GradientReversal", "--json", str(target), *FAST)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    before = target.read_text()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("grl_props.cli.json.dump", broken_dump)
    code, _, err = run(capsys, "grl_props:GradientReversal", "--json", str(target), *FAST)
    assert code == EXIT_INTERNAL and "disk full" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]  # no .grl-props-*.json
    assert target.read_text() == before  # the old file is untouched


def test_progress_on_a_terminal_is_throttled_and_always_shows_the_end():
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream, now = Terminal(), [0.0]
    progress = Progress(stream, clock=lambda: now[0])
    writes = []
    stream.write = lambda text: writes.append(text) or len(text)  # type: ignore[method-assign]
    for step in range(1, 5001):  # 5,000 training steps over 10 seconds
        now[0] = step * 0.002
        progress.stage("L", "training", step, 5000)
    assert len(writes) <= 10 / progress.interval + 2, len(writes)
    assert writes[-1].endswith("5000/5000\n")  # the final state, on its own line


def test_progress_off_a_terminal_writes_a_line_per_quarter():
    stream = io.StringIO()
    progress = Progress(stream)
    for step in range(1, 5001):
        progress.stage("L", "training", step, 5000)
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in lines] == [
        "1250/5000", "2500/5000", "3750/5000", "5000/5000"]


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

    monkeypatch.setattr("grl_props.label_removal.check_label_removal", must_not_train)
    code, _, err = run(capsys, "grl_props:GradientReversal", "--no-properties", "--report", str(tmp_path))
    assert code == EXIT_USAGE and "was not written by grl-props" in err
    assert mine.read_text() == "my notes\n"
    in_the_way = tmp_path / "other"
    (in_the_way / "GradientReversal").parent.mkdir()
    (in_the_way / "GradientReversal").write_text("a file where the report folder would go\n")
    code, _, err = run(capsys, "grl_props:GradientReversal", "--no-properties", "--report", str(in_the_way))
    assert code == EXIT_USAGE and "is not a directory" in err
    assert (in_the_way / "GradientReversal").read_text().startswith("a file where")


@pytest.mark.parametrize("family,probe,words", [("linear", "logistic", "linear"),
                                                ("mlp", "mlp", "MLP")])
def test_adversary_picks_the_family_and_the_json_says_what_was_judged(family, probe, words,
                                                                      tmp_path, capsys,
                                                                      monkeypatch):
    """Wiring only (30 training steps); the real verdicts are in tests/statistical."""
    from grl_props import label_removal
    from grl_props.experiment import ExperimentConfig, TrainConfig

    real, seen = label_removal.check_label_removal, []

    def short(layer, *, adversary, **kwargs):
        seen.append(adversary)
        config = ExperimentConfig(adversary=adversary, train=TrainConfig(steps=30))
        return real(layer, config=config, **kwargs)

    monkeypatch.setattr("grl_props.label_removal.check_label_removal", short)
    target = tmp_path / "out.json"
    code, out, _ = run(capsys, "grl_props:GradientReversal", "grl_props:gradient_reversal",
                       "--no-properties", "--adversary", family, "--json", str(target))
    assert seen == [family, family] and code in (EXIT_OK, EXIT_FAIL)
    assert out.count(f"label removed for {words} probes:") == 2
    assert out.count("leakage = usable information (bits)") == 1   # the contract, once per run
    result = json.loads(target.read_text())["results"][0]
    stats = result["statistical"]
    assert stats["adversary"] == family and stats["judged_probe"] == probe
    assert stats["measure"] == "usable_information_bits" and stats["null"] == "permutation"
    assert len(stats["per_seed"]) == 9
    assert {"reversal", "control"} <= set(stats["per_seed"][0]["usable_information_bits"])


def short_training(monkeypatch):
    """Make the verdict train 30 steps (wiring tests; the real verdicts are in tests/statistical)."""
    from grl_props import label_removal
    from grl_props.experiment import ExperimentConfig, TrainConfig

    real = label_removal.check_label_removal

    def short(layer, *, adversary, **kwargs):
        config = ExperimentConfig(adversary=adversary, train=TrainConfig(steps=30))
        return real(layer, config=config, **kwargs)

    monkeypatch.setattr("grl_props.label_removal.check_label_removal", short)


def test_report_prints_every_path_it_wrote_and_an_index_over_all_layers(tmp_path, capsys,
                                                                       monkeypatch):
    only(monkeypatch, "vjp_is_negative_alpha_v")
    short_training(monkeypatch)
    code, out, _ = run(capsys, "grl_props:GradientReversal", f"{LAYERS}:LostSign", "--report",
                       str(tmp_path), "--max-examples", "10")
    assert code == EXIT_FAIL
    written = [line for line in out.splitlines() if line.startswith("report")]
    assert written == [f"report: {tmp_path / 'GradientReversal' / 'index.html'}",
                       f"report: {tmp_path / 'LostSign' / 'index.html'}",
                       f"report index: {tmp_path / 'index.html'}"]
    for line in written:
        assert Path(line.partition(": ")[2]).is_file()
    index = (tmp_path / "index.html").read_text()
    assert index.startswith("<!-- written by grl-props report -->")
    assert 'href="GradientReversal/index.html"' in index and 'href="LostSign/index.html"' in index
    assert "FAIL</span> core/vjp_is_negative_alpha_v" in index
    assert "expected -1.0, got 1.0" in index and "Remedy:</b> Return grad * -alpha" in index
    # run again: grl-props' own files are replaced
    code, out, _ = run(capsys, "grl_props:GradientReversal", "--report", str(tmp_path),
                       "--max-examples", "10")
    assert f"report index: {tmp_path / 'index.html'}" in out


def test_report_never_overwrites_a_users_index(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "index.html"
    mine.write_text("my notes\n")

    def must_not_train(*args, **kwargs):
        raise AssertionError("trained before refusing the --report directory")

    monkeypatch.setattr("grl_props.label_removal.check_label_removal", must_not_train)
    code, _, err = run(capsys, "grl_props:GradientReversal", "--no-properties", "--report",
                       str(tmp_path))
    assert code == EXIT_USAGE
    assert err == (f"grl-props: error: --report: {mine} exists and was not written by grl-props; "
                   "choose another directory or remove it\n")
    assert mine.read_text() == "my notes\n"


def test_an_unknown_adversary_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "grl_props:GradientReversal", "--adversary", "transformer"])
    assert info.value.code == EXIT_USAGE
    assert "invalid choice: 'transformer'" in capsys.readouterr().err


def test_report_folders_are_unique_per_layer():
    from grl_props.cli import _report_folders

    assert _report_folders(["a:Foo#1", "a:Foo_1", "b:Bar"]) == ["a_Foo_1", "a_Foo_1-2", "b_Bar"]
