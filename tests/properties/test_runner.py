"""The runner: isolation in child processes, claims, health checks and the examples really run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings
from hypothesis import strategies as st
from process_layers import PID_FILE
from zoo import ClaimsTorchScript, DisclaimsTorchScript

from grl_props.adapters import SpecError, load_layer
from grl_props.matrix import render_details, render_matrix
from grl_props.properties import Property, get
from grl_props.runner import LayerReport, PropertyResult, RunOptions, run_battery, run_property

LAYERS = Path(__file__).with_name("process_layers.py")
FEW = RunOptions(max_examples=5, timeout=60)


def _ran_in(path: Path) -> set[int]:
    return {int(line.split()[0]) for line in path.read_text().splitlines()}


def test_isolated_run_happens_in_a_child_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                 ) -> None:
    record = tmp_path / "pids"
    monkeypatch.setenv(PID_FILE, str(record))  # set after any fork server started: passed along
    props = [get("forward_identity"), get("vjp_is_negative_alpha_v")]
    report = run_battery(load_layer(f"{LAYERS}:RecordsProcess"), options=FEW, properties=props)
    assert [r.status for r in report.properties] == ["pass", "pass"], report
    assert report.isolation.startswith("child process per property (forkserver"), report.isolation
    pids = _ran_in(record)  # written by the layer itself, wherever it ran
    assert pids and os.getpid() not in pids
    # one child for grl-props' first call of the layer, then one per property
    assert {r.pid for r in report.properties} < pids and len(pids) == 3


def test_isolated_run_survives_a_layer_that_calls_os_exit() -> None:
    props = [get("forward_identity"), get("no_trainable_parameters")]
    report = run_battery(load_layer(f"{LAYERS}:ExitsProcess"), options=FEW, properties=props)
    died, after = report.properties
    assert (died.status, died.detail) == (
        "error", "the process running this property died (exit code 7)")
    assert died.pid is not None and died.pid != os.getpid()
    assert after.status == "pass"  # the run went on after the child died; so did this process


def test_a_layer_that_cannot_run_gets_one_sentence_and_one_status_everywhere() -> None:
    """A layer whose process dies at its first call: every property gets the same status and
    the same sentence, and none is run (so none can say ``pass`` without calling the layer)."""
    props = [get("forward_identity"), get("no_trainable_parameters"), get("func_grad")]
    report = run_battery(load_layer(f"{LAYERS}:AlwaysExits"), options=FEW, properties=props)
    assert report.cannot_run == (
        "the layer cannot run: the process making grl-props' first call of it (forward and "
        "backward on a float32 tensor of shape (2, 3)) died (exit code 7)")
    assert {(r.status, r.detail) for r in report.properties} == {
        ("error", f"not run: {report.cannot_run}")}
    details = render_details([report])
    assert details.count(report.cannot_run) == 1 and "every property (3), none run" in details


@pytest.mark.parametrize(("spec", "status", "words"), [
    (f"{LAYERS.parent.parent / 'cli' / 'misbehaving_layers.py'}:Raises", "error",
     "the layer cannot run: called on a float32 tensor of shape (2, 3), it raised RuntimeError: "
     "this layer is broken on purpose (at "),
    (f"{LAYERS.parent.parent / 'cli' / 'misbehaving_layers.py'}:ReturnsList", "fail",
     "the layer cannot run as a gradient reversal layer: called on a float32 tensor of shape "
     "(2, 3), its output is a list, expected a torch.Tensor"),
    ("torch.nn:ReLU", "fail", "the layer is not a gradient reversal layer: its forward is not the "
     "identity: at index (0, 1): expected -2.0, got 0.0"),
])
def test_the_first_call_names_what_went_wrong_and_where(spec: str, status: str, words: str
                                                        ) -> None:
    from grl_props.runner import run_preflight

    found = run_preflight(load_layer(spec), RunOptions(isolate=False))
    assert found is not None and found.status == status
    assert found.detail.startswith(words), found.detail
    if status == "error":  # where it came from: the layer's own line, not grl-props'
        source = Path(spec.partition(":Raises")[0]).read_text().splitlines()
        line = next(n for n, text in enumerate(source, 1) if "broken on purpose" in text)
        assert found.detail.endswith(f"misbehaving_layers.py:{line}, in forward)"), found.detail
    assert run_preflight(load_layer("grl_props:GradientReversal"), RunOptions(isolate=False)) is None


def test_a_class_that_is_no_reversal_is_called_that_once() -> None:
    """``torch.nn:Linear --alpha-arg in_features``: one sentence, not an error per property
    pointing into grl-props' adapters."""
    report = run_battery(load_layer("torch.nn:Linear", alpha_arg="in_features"), options=FEW,
                         properties=[get("forward_identity"), get("func_grad")])
    assert report.cannot_run == (
        "torch.nn:Linear is not a gradient reversal layer that grl-props can build: "
        "Linear(in_features=1.0) raised TypeError: Linear.__init__() missing 1 required "
        "positional argument: 'out_features' (name the argument that holds alpha with "
        "--alpha-arg, or alpha_arg= in conformance_suite)")
    assert "adapters.py" not in render_details([report])
    assert [r.status for r in report.properties] == ["error", "error"]


def test_no_cuda_query_in_the_caller_before_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking CUDA anything before forking breaks the children on GPU machines: the caller
    must not, even to draw devices; the children ask for themselves."""
    asked: list[str] = []

    def recorder(name: str):  # type: ignore[no-untyped-def]
        def record(*args: object, **kwargs: object) -> object:
            asked.append(name)
            raise AssertionError(f"{name} called in the caller")
        return record

    monkeypatch.setattr(torch.cuda, "is_available", recorder("torch.cuda.is_available"))
    monkeypatch.setattr(torch.cuda, "device_count", recorder("torch.cuda.device_count"))
    monkeypatch.setattr(torch._C, "_cuda_getDeviceCount", recorder("_cuda_getDeviceCount"),
                        raising=False)  # absent from CPU builds
    props = [get("forward_identity"), get("autocast_cuda")]
    report = run_battery(load_layer("grl_props:GradientReversal"), options=FEW, properties=props)
    assert asked == []
    assert report.properties[0].status == "pass", report.properties[0]
    assert report.properties[1].status in ("pass", "skip")  # decided by the child's own query


def test_a_layer_with_no_importable_name_runs_in_a_fork_and_the_report_says_so(tmp_path: Path
                                                                             ) -> None:
    class Local(ClaimsTorchScript):  # defined inside a function: no other process can import it
        pass

    report = run_battery(load_layer(Local), options=FEW, properties=[get("forward_identity")])
    assert report.isolation.startswith("child process per property (fork of this process: "
                                       "the layer "), report.isolation
    assert "defined inside a function" in report.note
    (result,) = report.properties
    assert result.status == "pass" and result.pid not in (None, os.getpid())
    assert "defined inside a function" in render_details([report])


def test_health_checks_protect_the_run_and_blame_grl_props() -> None:
    def check(layer: object, x: int) -> None:
        pass

    rejects_all = Property("rejects_all", "core", "a strategy that filters out every draw", check,
                           {"x": st.integers().filter(lambda _: False)})
    result = run_property(load_layer("grl_props:GradientReversal"), rejects_all,
                          RunOptions(isolate=False))
    assert result.status == "error"
    assert result.detail.startswith("grl-props' strategy for rejects_all failed a Hypothesis "
                                    "health check (a bug of grl-props, not of the layer)")
    assert "filtering out a lot of inputs" in result.detail


def test_a_property_that_ran_fewer_examples_than_asked_says_so() -> None:
    def check(layer: object, x: int) -> None:
        pass

    tiny = Property("tiny_space", "core", "only three examples exist", check,
                    {"x": st.sampled_from([1, 2, 3])})
    result = run_property(load_layer("grl_props:GradientReversal"), tiny, RunOptions(isolate=False))
    assert (result.status, result.examples_run, result.examples_asked) == ("pass", 3, 100)
    assert result.ran_fewer_examples
    assert result.detail == "ran 3 of 100 examples asked (Hypothesis stopped: nothing left to do)"
    assert result.to_json()["examples"] == {"run": 3, "asked": 100}
    report = LayerReport("x", [result])
    assert "pass*" in render_matrix([report], ["core"])
    assert "* ran fewer examples than asked" in render_matrix([report], ["core"])
    assert "pass* core/tiny_space: ran 3 of 100" in render_details([report])


def test_every_example_asked_is_run_and_counted() -> None:
    prop = get("forward_identity")
    result = run_property(load_layer("grl_props:GradientReversal"), prop,
                          RunOptions(isolate=False, max_examples=10))
    assert result.examples_asked == 10 + len(prop.examples) == result.examples_run
    assert not result.ran_fewer_examples and result.detail == ""


def test_a_loaded_user_profile_does_not_change_grl_props_settings() -> None:
    previous = settings.get_current_profile_name()  # e.g. "ci" when CI is set: put it back
    settings.register_profile("grl-props-test-user", max_examples=2, deadline=5)
    settings.load_profile("grl-props-test-user")
    try:
        result = run_property(load_layer("grl_props:GradientReversal"), get("forward_identity"),
                              RunOptions(isolate=False, max_examples=10))
    finally:
        settings.load_profile(previous)
    assert result.examples_run == 10 + len(get("forward_identity").examples), result


def test_claims_come_from_the_attribute_or_the_caller_never_from_a_docstring() -> None:
    disclaims = load_layer(DisclaimsTorchScript)
    assert "does not support TorchScript" in (DisclaimsTorchScript.__doc__ or "")
    for name in ("torchscript", "torch_export"):
        result = run_property(disclaims, get(name), RunOptions(isolate=False))
        assert (result.status, result.skip_kind) == ("skip", "not_claimed"), result
        assert result.detail.startswith("not claimed: ")
    claimed = run_property(load_layer(ClaimsTorchScript), get("torchscript"),
                           RunOptions(isolate=False))
    assert claimed.status == "fail"  # it claims, so it is checked
    given = run_property(load_layer(DisclaimsTorchScript, claims=("torchscript",)),
                         get("torchscript"), RunOptions(isolate=False))
    assert given.status == "fail"
    assert load_layer("grl_props:GradientReversal").claims == frozenset()


@pytest.mark.parametrize(("claims", "words"), [
    (("torchscipt",), "names unknown claims ['torchscipt']; known: torchscript, torch_export"),
    ("torchscript", "must be a tuple of claim names"),
])
def test_bad_claims_are_one_sentence(claims: object, words: str) -> None:
    with pytest.raises(SpecError, match=words.replace("[", r"\[").replace("]", r"\]")):
        load_layer("grl_props:GradientReversal", claims=claims)  # type: ignore[arg-type]


def test_summary_counts_skips_apart_from_passes() -> None:
    results = [PropertyResult("a", "compat", "pass"), PropertyResult("b", "compat", "fail"),
               PropertyResult("c", "compat", "skip", skip_kind="not_claimed"),
               PropertyResult("d", "compat", "skip", skip_kind="needs_cuda"),
               PropertyResult("e", "compat", "skip", skip_kind="not_applicable"),
               PropertyResult("f", "core", "error")]
    report = LayerReport("x", results)
    assert report.summary() == {
        "core": {"pass": 0, "fail": 0, "error": 1, "skip_not_claimed": 0, "skip_needs_cuda": 0,
                 "skip_not_applicable": 0},
        "compat": {"pass": 1, "fail": 1, "error": 0, "skip_not_claimed": 1, "skip_needs_cuda": 1,
                   "skip_not_applicable": 1},
    }
    matrix = render_matrix([report], ["core"])
    for cell in ("skip (not claimed)", "skip (needs CUDA)", "skip (n/a)", "1/5 pass, 3 skip"):
        assert cell in matrix, matrix


@pytest.mark.parametrize(("cannot", "why"), [
    ("fork", "and this platform cannot fork"),
    ("cuda", "and this process has initialised CUDA, which a forked child cannot use"),
])
def test_no_isolation_is_never_silent(cannot: str, why: str, monkeypatch: pytest.MonkeyPatch
                                      ) -> None:
    """Where a layer with no name cannot be forked safely, it runs here, and the report says so."""
    import grl_props.runner as runner

    class Local(ClaimsTorchScript):
        pass

    if cannot == "fork":
        monkeypatch.setattr(runner.multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    else:
        monkeypatch.setattr(runner, "_cuda_initialized", lambda: True)
    report = run_battery(load_layer(Local), options=FEW, properties=[get("forward_identity")])
    assert report.isolation.startswith("none: not isolated: the layer ")
    assert report.isolation.endswith(why) and why in report.note
    assert report.properties[0].pid == os.getpid()


def test_details_show_each_remedy_under_its_failure_and_each_detail_once() -> None:
    results = [PropertyResult("a", "core", "fail", "core broke", remedy="Fix a."),
               PropertyResult("b", "compat", "fail", "same thing", remedy="Fix b."),
               PropertyResult("c", "compat", "fail", "same thing", remedy="Fix b."),
               PropertyResult("d", "hygiene", "pass", remedy="Never shown.")]
    details = render_details([LayerReport("x", results)])
    assert details.splitlines()[1:] == [
        "   FAIL core/a:", "      core broke", "      remedy: Fix a.",
        "   FAIL compat/b, compat/c:", "      same thing",
        "      remedy (if it still fails once core passes): Fix b."]
    assert [r.to_json()["remedy"] for r in results] == ["Fix a.", "Fix b.", "Fix b.", None]
    alone = render_details([LayerReport("x", results[1:2])])
    assert "      remedy: Fix b." in alone.splitlines()  # no core failure: no condition


def test_a_failure_carries_its_propertys_remedy() -> None:
    result = run_property(load_layer(f"{LAYERS.parent.parent / 'cli' / 'misbehaving_layers.py'}"
                                     ":LostSign"), get("vjp_is_negative_alpha_v"),
                          RunOptions(isolate=False, max_examples=10))
    assert result.status == "fail" and result.remedy == get("vjp_is_negative_alpha_v").remedy
    assert result.to_json()["remedy"] == result.remedy
