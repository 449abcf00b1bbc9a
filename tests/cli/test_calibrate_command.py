"""``grl-props calibrate``: same numbers with any engine, resumes after a kill, honest summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from distributed import LocalCluster

from grl_props.calibration import MARKER, read_results, summarize
from grl_props.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, main

SPEC = "grl_props:GradientReversal"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "grl_props", "calibrate", *args]


def _numbers(path: Path) -> dict[int, tuple]:
    """Per set: verdict and every per-seed number (not the seconds, which vary)."""
    return {r["set"]: (r["verdict"], r["leakage"], r["control"], r["reported_leakage"])
            for r in read_results([path])}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Path:
    """Sets 1000-1001 of the reference layer with --jobs 2, uninterrupted."""
    out = tmp_path_factory.mktemp("jobs2") / "r.jsonl"
    done = subprocess.run(_cli(SPEC, "--sets", "2", "--jobs", "2", "--out", str(out)),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_OK, done.stderr
    return out


def test_a_killed_run_resumes_and_ends_with_the_summary_of_an_uninterrupted_one(
        two_workers, tmp_path):
    out = tmp_path / "r.jsonl"
    run = subprocess.Popen(_cli(SPEC, "--sets", "2", "--out", str(out)),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (out.exists() and out.read_text().count("\n")):
        time.sleep(0.2)
    os.kill(run.pid, signal.SIGKILL)  # the second set is in flight: lost
    run.wait()
    assert out.read_text().count("\n") == 1
    with out.open("a") as f:  # and a line cut off mid-write
        f.write('{"tool": "grl-props calibrate", "spec": "grl_pr')
    again = subprocess.run(_cli(SPEC, "--sets", "2", "--out", str(out)),
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == EXIT_OK, again.stderr
    assert "1 seed sets judged now, 1 were already there" in again.stdout
    assert _numbers(out) == _numbers(two_workers)  # == : bit for bit, one worker or two
    assert summarize(read_results([out])) == summarize(read_results([two_workers]))


def test_a_local_dask_cluster_gives_the_same_numbers(two_workers, tmp_path):
    out = tmp_path / "r.jsonl"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        done = subprocess.run(_cli(SPEC, "--sets", "2", "--scheduler", cluster.scheduler_address,
                                   "--out", str(out)), capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_OK, done.stderr
    assert _numbers(out) == _numbers(two_workers)


def test_summary_ends_with_the_false_fail_rate_and_its_interval(two_workers, capsys):
    code = main(["calibrate", "--summarize", str(two_workers)])
    lines = capsys.readouterr().out.splitlines()
    assert code == EXIT_OK
    assert lines[0].startswith(f"{SPEC}, adversary linear: 2 seed sets (1000–1001), 18 seeds")
    # 18 seeds cannot show that at most 10% leak > tau: the rate is stated, its reading is not
    assert lines[-1] == (
        "fail rate: 0/2 = 0.00% (95% CI 0.00%–84.19%) (Clopper–Pearson); which stated rate "
        "applies cannot be told yet: 0/18 = 0.00% (95% CI 0.00%–18.53%) of seeds leak > tau "
        "(the false-fail rate needs <= 10%); run more sets")


def _record(k: int, verdict: str, leakage: float, control: float = 1.0,
            alpha_arg: str | None = None) -> dict:
    return {"tool": MARKER, "spec": "x:L", "adversary": "linear", "alpha_arg": alpha_arg, "set": k,
            "verdict": verdict, "judged_probe": "logistic", "reported_probe": "mlp",
            "leakage": [leakage] * 9, "control": [control] * 9, "reported_leakage": [0.5] * 9,
            "contract": {"tau": 0.1, "delta": 0.1, "robustness": 0.1, "false_fail_rate": 1e-3,
                         "false_pass_rate": 1e-3}}


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_too_many_fails_are_not_consistent_with_the_stated_rate(tmp_path, capsys):
    records = [_record(k, "fail" if k < 5 else "pass", 0.02) for k in range(40)]
    code = main(["calibrate", "--summarize", str(_write(tmp_path / "r.jsonl", records))])
    last = capsys.readouterr().out.splitlines()[-1]
    assert code == EXIT_FAIL
    assert last.startswith("false-fail rate: 5/40 = 12.50% (95% CI 4.19%–26.80%)")
    assert last.endswith("NOT consistent with the stated <= 0.001")


def _last_line(tmp_path: Path, capsys, records: list[dict]) -> tuple[int, str]:
    code = main(["calibrate", "--summarize", str(_write(tmp_path / "r.jsonl", records))])
    return code, capsys.readouterr().out.splitlines()[-1]


def test_a_leaking_layer_gets_its_false_pass_rate_not_a_false_fail_rate(tmp_path, capsys):
    code, last = _last_line(tmp_path, capsys, [_record(k, "fail", 0.6) for k in range(10)])
    assert code == EXIT_OK
    assert last == ("false-pass rate: 0/10 = 0.00% (95% CI 0.00%–30.85%) (Clopper–Pearson), "
                    "consistent with the stated <= 0.001, not yet shown (about 3688 sets "
                    "without one would show it)")


def test_enough_clean_sets_show_the_stated_rate(tmp_path, capsys):
    code, last = _last_line(tmp_path, capsys, [_record(k, "pass", 0.02) for k in range(3688)])
    assert code == EXIT_OK
    assert last.startswith("false-fail rate: 0/3688 = 0.00% (95% CI 0.00%–0.10%)")
    assert last.endswith("within the stated <= 0.001")


def test_a_layer_between_the_regions_gets_no_stated_rate(tmp_path, capsys):
    code, last = _last_line(tmp_path, capsys, [_record(k, "pass", 0.15) for k in range(40)])
    assert code == EXIT_OK
    assert last.startswith("this layer leaks > tau in more than 10% of seeds but >= tau + delta "
                           "in fewer than 90%: the contract states no rate here")


def test_runs_with_another_alpha_argument_are_summarised_apart(tmp_path, capsys):
    records = [_record(0, "pass", 0.0), _record(0, "pass", 0.0, alpha_arg="lambda_")]
    main(["calibrate", "--summarize", str(_write(tmp_path / "r.jsonl", records))])
    heads = [line for line in capsys.readouterr().out.splitlines() if line.startswith("x:L")]
    assert sorted(heads) == [
        "x:L (alpha argument lambda_), adversary linear: 1 seed sets (0–0), 9 seeds",
        "x:L, adversary linear: 1 seed sets (0–0), 9 seeds"]


@pytest.mark.parametrize("content", [
    '{"my": "data"}',                                              # one line, no newline
    json.dumps(_record(1000, "pass", 0.0)) + '\n{"tool": "grl-props calibrate", "spec": "x',
    "\x89PNG\r\n\x1a\n\x00\xff",                                  # not text at all
])
def test_files_that_are_not_ours_or_of_another_layer_are_left_exactly_as_they_are(
        content, tmp_path, capsys):
    theirs = tmp_path / "r.jsonl"
    theirs.write_bytes(content.encode("latin-1") if content.startswith("\x89") else
                       content.encode())
    before = theirs.read_bytes()
    assert main(["calibrate", SPEC, "--sets", "1", "--out", str(theirs)]) == EXIT_USAGE
    assert theirs.read_bytes() == before
    assert "grl-props: error:" in capsys.readouterr().err


def test_a_file_grl_props_did_not_write_is_refused_and_left_alone(tmp_path, capsys):
    mine = tmp_path / "notes.jsonl"
    mine.write_text('{"my": "data"}\n')
    code = main(["calibrate", SPEC, "--sets", "1", "--out", str(mine)])
    assert code == EXIT_USAGE
    assert "line 1 was not written by grl-props calibrate" in capsys.readouterr().err
    assert mine.read_text() == '{"my": "data"}\n'


def test_sets_of_another_layer_are_refused(tmp_path, capsys):
    other = _write(tmp_path / "r.jsonl", [_record(1000, "pass", 0.0)])
    before = other.read_text()
    code = main(["calibrate", SPEC, "--sets", "1", "--out", str(other)])
    assert code == EXIT_USAGE
    assert "holds seed sets of x:L (adversary linear" in capsys.readouterr().err
    assert other.read_text() == before


@pytest.mark.parametrize("args, words", [
    (["--sets", "1", "--out", "r.jsonl"], "calibrate needs SPEC, --sets N and --out PATH"),
    ([SPEC, "--sets", "1", "--jobs", "0", "--out", "r.jsonl"], "--jobs must be 1 or more"),
    (["nowhere_pkg:Layer", "--sets", "1", "--out", "r.jsonl"], "nowhere_pkg"),
])
def test_bad_requests_get_one_sentence_and_run_nothing(args, words, tmp_path, capsys,
                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["calibrate", *args]) == EXIT_USAGE
    assert words in capsys.readouterr().err
    assert not (tmp_path / "r.jsonl").exists() or (tmp_path / "r.jsonl").read_text() == ""
