"""The pytest faces end to end: ``conformance_suite`` and the ``pytest11`` plugin, fresh projects.

Each test writes a small project with ``pytester`` and runs pytest on it in a subprocess (so the
plugin is loaded through its entry point, and pytest-xdist can start workers). Examples per
property are kept at 20 to keep these runs short.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from grl_props.properties import all_properties
from grl_props.testing import RunContext, conformance_suite, derive_seed, replay_commands

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cellcap_style"
EXAMPLE_LAYER = EXAMPLE / "src" / "cellcap_style" / "nn" / "gradient_reversal.py"
PROCESS_LAYERS = Path(__file__).resolve().parents[1] / "properties" / "process_layers.py"

NOT_REVERSING = '''
import torch
from torch import nn


class _PassThrough(torch.autograd.Function):
    """Identity in forward and in backward: it forgets to reverse."""

    @staticmethod
    def forward(ctx, x, alpha):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class NotReversing(nn.Module):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return _PassThrough.apply(x, self.alpha)
'''


LOST_SIGN = '''
import torch
from torch import nn


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.alpha, None  # forgot .neg()


class LostSign(nn.Module):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return _Reverse.apply(x, self.alpha)
'''


def _suite_line(module: str, name: str, **options: object) -> str:
    extra = "".join(f", {k}={v!r}" for k, v in options.items())
    return (f"from {module} import {name}\nfrom grl_props.testing import conformance_suite\n\n"
            f"TestX = conformance_suite({name}, max_examples=20{extra})\n")


@pytest.fixture
def cellcap_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with only the CellCap-style layer and the one-line suite."""
    pytester.makepyfile(cellcap_layer=EXAMPLE_LAYER.read_text())
    pytester.makepyfile(test_cellcap=_suite_line("cellcap_layer", "GradientReverseModule",
                                                 statistical=False))
    return pytester


@pytest.fixture
def broken_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project whose layer does not reverse the gradient, with the same one-line suite."""
    pytester.makepyfile(bad_layer=NOT_REVERSING)
    pytester.makepyfile(test_bad=_suite_line("bad_layer", "NotReversing", statistical=False))
    return pytester


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, str]]:
    """Run pytest in a subprocess; return the result and {test id: outcome} from JUnit XML."""
    report = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--junitxml={report}",
                                           *args)
    outcomes: dict[str, str] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            kinds = {child.tag for child in case} & {"failure", "error", "skipped"}
            outcomes[f"{case.get('classname')}::{case.get('name')}"] = (
                kinds.pop() if kinds else "passed")
    return result, outcomes


# Load the property modules now: pytester restores sys.modules after each of its tests, and a
# property module imported for the first time inside one would be imported (registered) twice.
_CORE_TESTS = frozenset(f"test_{p.name}" for p in all_properties(("core",)))


def _core_tests() -> set[str]:
    return set(_CORE_TESTS)


def test_suite_passes_plain_and_under_xdist_in_random_order(cellcap_project: pytest.Pytester
                                                           ) -> None:
    plain, plain_outcomes = _run(cellcap_project, "-p", "no:randomly")
    assert plain.ret == 0, plain.stdout.str()
    assert {k.rpartition("::")[2] for k in plain_outcomes} == _core_tests()
    assert set(plain_outcomes.values()) == {"passed"}

    shuffled, shuffled_outcomes = _run(cellcap_project, "-n", "2", "-p", "randomly")
    assert shuffled.ret == 0, shuffled.stdout.str()
    shuffled.stdout.fnmatch_lines(["*Using --randomly-seed=*", "*created: 2/2 workers*"])
    assert shuffled_outcomes == plain_outcomes


def test_non_reversing_layer_fails_and_prints_its_replay(broken_project: pytest.Pytester) -> None:
    result, outcomes = _run(broken_project, "-p", "no:randomly")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert outcomes["test_bad.TestX::test_vjp_is_negative_alpha_v"] == "failure"
    assert outcomes["test_bad.TestX::test_forward_identity"] == "passed"
    nodeid = "test_bad.py::TestX::test_vjp_is_negative_alpha_v"
    seed = derive_seed(nodeid, 0)
    result.stdout.fnmatch_lines([
        "*grl-props property vjp_is_negative_alpha_v (core: *) failed on NotReversing:*",
        f"replay: pytest {nodeid} --grl-seed 0",
        f"    or: PYTHONPATH=. grl-props check bad_layer:NotReversing --seed {seed} "
        "--max-examples 20 --no-stats",
    ])
    first = _failure_text(result.stdout.lines, "test_vjp_is_negative_alpha_v")

    replay_line = next(line for line in result.stdout.lines if line.startswith("replay: pytest"))
    replay, replay_outcomes = _run(broken_project, "-p", "no:randomly",
                                   *shlex.split(replay_line.removeprefix("replay: pytest")))
    assert replay.ret == pytest.ExitCode.TESTS_FAILED
    assert replay_outcomes == {"test_bad.TestX::test_vjp_is_negative_alpha_v": "failure"}
    assert _failure_text(replay.stdout.lines, "test_vjp_is_negative_alpha_v") == first


#: The one line a failure shows first: the inputs, then expected and actual values.
_VALUES = re.compile(r"^(?:x = \S+, v = \S+, )?alpha = \S+: expected (.+), got (.+)$")


def _smallest_first(text: list[str]) -> str | None:
    """``None`` when a lost sign's failure message shows its smallest failure first: one line
    "…: expected …, got …" of at most 4 opposite-signed values before torch's statistics, and
    a counterexample of at most 4 elements; else what is wrong."""
    found = [i for i, line in enumerate(text) if _VALUES.match(line)]
    stats = [i for i, line in enumerate(text) if line.startswith(("Scalars are", "Tensor-likes"))]
    if not found or not stats or found[0] > stats[0]:
        return "no 'expected …, got …' line before the statistics"
    expected, got = _VALUES.match(text[found[0]]).groups()  # type: ignore[union-attr]
    numbers = [float(n) for n in re.findall(r"-?\d[\d.e+-]*", f"{expected} {got}")]
    half = len(numbers) // 2
    if len(numbers) % 2 or not 1 <= half <= 4 or any(
            not math.isclose(e, -g) or e == 0 for e, g in zip(numbers[:half], numbers[half:], strict=True)):
        return f"not a lost sign of at most 4 elements: {text[found[0]]}"
    block = "\n".join(text).partition("Counterexample:")[2].partition("Also fails")[0]
    sizes = [math.prod(int(n) for n in shape.replace(",", " ").split())
             for shape in re.findall(r"shape=\(([\d, ]*)\)", block)]
    return None if all(size <= 4 for size in sizes) else f"a larger counterexample: {block}"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_lost_sign_shows_its_smallest_failure_and_remedy(pytester: pytest.Pytester, seed: int
                                                           ) -> None:
    pytester.makepyfile(lost_layer=LOST_SIGN)
    pytester.makepyfile(test_lost=_suite_line("lost_layer", "LostSign", statistical=False))
    result, outcomes = _run(pytester, "-p", "no:randomly", "--grl-seed", str(seed), "-k",
                            "vjp_is_negative_alpha_v or model_gradients")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert set(outcomes.values()) == {"failure"} and len(outcomes) == 2, outcomes
    for test in ("test_vjp_is_negative_alpha_v", "test_model_gradients"):
        text = _failure_text(result.stdout.lines, test)
        assert _smallest_first(text) is None, "\n".join(text)
        assert any(line.startswith("remedy: ") for line in text), text
        assert not any("alpha=alpha=" in line for line in text)
    assert _smallest_first(["Scalars are not equal!", "alpha = 1.0: expected -1.0, got 1.0"])
    assert _smallest_first(["alpha = 1.0: expected -1.0, got -1.0", "Scalars are not equal!"])


def test_a_layer_that_cannot_run_fails_every_property_test_with_one_sentence() -> None:
    """Even a property that would never call forward (no_trainable_parameters) does not pass."""
    from grl_props.properties import get
    from grl_props.testing import run_property_test

    layers = Path(__file__).resolve().parents[1] / "cli" / "misbehaving_layers.py"
    messages = []
    for name in ("forward_identity", "no_trainable_parameters", "func_grad"):
        with pytest.raises(pytest.fail.Exception) as info:
            run_property_test(f"{layers}:Raises", get(name), nodeid=f"t.py::T::test_{name}",
                              context=RunContext())
        messages.append(str(info.value).partition(":\n")[2].partition("\n\nreplay:")[0])
    line = next(n for n, text in enumerate(layers.read_text().splitlines(), 1)
                if "broken on purpose" in text)
    assert messages == [f"not run: the layer cannot run: called on a float32 tensor of shape "
                        f"(2, 3), it raised RuntimeError: this layer is broken on purpose (at "
                        f"{layers}:{line}, in forward)"] * 3


def _failure_text(lines: list[str], test: str) -> list[str]:
    """The body of one failure section (between its header and the next section)."""
    start = next(i for i, line in enumerate(lines) if line.strip("_ ").endswith(f"TestX.{test}"))
    end = next(i for i in range(start + 1, len(lines))
               if lines[i].startswith(("____", "====", "- generated")))
    return [line for line in lines[start + 1:end] if not line.startswith("[gw")]


def test_grl_impl_generates_one_test_per_property(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(cellcap_layer=EXAMPLE_LAYER.read_text(), bad_layer=NOT_REVERSING)
    result, outcomes = _run(
        pytester, "-p", "no:randomly", "--grl-impl", "cellcap_layer.py:GradientReverseModule",
        "--grl-impl", "bad_layer.py:NotReversing", "-m", "not grl_statistical",
        "-k", "vjp_is_negative_alpha_v or forward_identity", "-v")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*grl-props: base seed 0 *layers: cellcap_layer.py:GradientReverseModule, "
        "bad_layer.py:NotReversing*",
        "grl-impl?cellcap_layer.py:GradientReverseModule?::forward_identity PASSED*",
        "grl-impl?cellcap_layer.py:GradientReverseModule?::vjp_is_negative_alpha_v PASSED*",
        "grl-impl?bad_layer.py:NotReversing?::forward_identity PASSED*",
        "grl-impl?bad_layer.py:NotReversing?::vjp_is_negative_alpha_v FAILED*",
        "replay: pytest --grl-impl bad_layer.py:NotReversing -k vjp_is_negative_alpha_v "
        "--grl-seed 0",
        f"*1 failed, 3 passed, {2 * (len(_CORE_TESTS) + 1) - 4} deselected*",
    ])
    assert sorted(outcomes.values()) == ["failure", "passed", "passed", "passed"]


def test_grl_impl_that_does_not_import_is_one_sentence(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--grl-impl", "no_such_module_here:Layer")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --grl-impl 'no_such_module_here:Layer': importing "
                                 "'no_such_module_here' failed: ModuleNotFoundError: *"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_not_grl_statistical_deselects_the_statistical_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(cellcap_layer=EXAMPLE_LAYER.read_text())
    pytester.makepyfile(test_cellcap=_suite_line("cellcap_layer", "GradientReverseModule"))
    everything = pytester.runpytest_subprocess("--collect-only", "-q")
    everything.stdout.fnmatch_lines(["test_cellcap.py::TestX::test_label_removed"])
    kept = pytester.runpytest_subprocess("--collect-only", "-q", "-m", "not grl_statistical",
                                         "--strict-markers")
    assert "test_label_removed" not in kept.stdout.str()
    kept.stdout.fnmatch_lines(["test_cellcap.py::TestX::test_forward_identity",
                               f"{len(_core_tests())}/{len(_core_tests()) + 1} tests collected "
                               "(1 deselected)*"])


def test_vary_seed_is_printed_and_shared_by_xdist_workers(broken_project: pytest.Pytester
                                                         ) -> None:
    result, outcomes = _run(broken_project, "-p", "no:randomly", "-n", "2", "--grl-vary-seed",
                            "-k", "vjp_is_negative_alpha_v or zero_alpha_gives_zero_gradient")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    header = next(line for line in result.stdout.lines if line.startswith("grl-props: base seed"))
    seed = int(header.split()[3])
    assert "drawn by --grl-vary-seed" in header
    # unique: with CI set, pytest's short summary repeats each failure's full message
    replays = sorted({line for line in result.stdout.lines if line.startswith("replay: pytest")})
    assert len(replays) == 2, replays
    assert all(line.endswith(f"--grl-seed {seed}") for line in replays), replays

    both = broken_project.runpytest_subprocess("--grl-seed", "3", "--grl-vary-seed")
    assert both.ret == pytest.ExitCode.USAGE_ERROR
    both.stderr.fnmatch_lines(["ERROR: --grl-seed and --grl-vary-seed exclude each other*"])


def test_suite_spec_that_does_not_import_fails_with_one_sentence(pytester: pytest.Pytester
                                                                ) -> None:
    pytester.makepyfile(test_missing="from grl_props.testing import conformance_suite\n\n"
                        "TestMissing = conformance_suite('no_such_module_here:Layer', "
                        "statistical=False)\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-k", "forward_identity")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["grl-props cannot load the layer under test: importing "
                                 "'no_such_module_here' failed: ModuleNotFoundError: *"])
    assert "Traceback" not in result.stdout.str()


# ---------------------------------------------------------------------------------------------
# The library side, without a subprocess


def test_conformance_suite_makes_one_method_per_property() -> None:
    suite = conformance_suite("grl_props:GradientReversal", tiers=("core", "hygiene"))
    methods = {name for name in vars(suite) if name.startswith("test_")}
    expected = {f"test_{p.name}" for p in all_properties(("core", "hygiene"))}
    assert methods == expected | {"test_label_removed"}
    marks = {m.name for m in getattr(suite.test_label_removed, "pytestmark", [])}
    assert marks == {"grl_statistical"}
    assert not {f"test_{p.name}" for p in all_properties(("compat",))} & methods


def test_conformance_suite_refuses_unknown_tiers_and_options() -> None:
    with pytest.raises(ValueError, match="tiers must be among"):
        conformance_suite("grl_props:GradientReversal", tiers=("fast",))
    with pytest.raises(TypeError, match="unknown options \\['max_exmaples'\\]"):
        conformance_suite("grl_props:GradientReversal", max_exmaples=3)


def test_derive_seed_is_stable_and_depends_on_node_id_and_base() -> None:
    nodeid = "tests/test_x.py::TestX::test_forward_identity"
    assert derive_seed(nodeid, 0) == derive_seed(nodeid, 0)
    assert derive_seed(nodeid, 0) == 1704087404  # fixed: same seed on every machine and run
    assert derive_seed(nodeid, 1) != derive_seed(nodeid, 0)
    assert derive_seed(nodeid + "x", 0) != derive_seed(nodeid, 0)
    assert 0 <= derive_seed(nodeid, 7, below=10) < 10


def test_replay_commands_name_seed_profile_and_cli() -> None:
    commands = replay_commands("t.py::T::test_a b", RunContext(5, "ci"), spec="pkg.mod:L",
                               cli_seed=11, max_examples=20)
    assert commands[0] == "pytest 't.py::T::test_a b' --grl-seed 5 --grl-profile ci"
    assert commands[1].endswith("grl-props check pkg.mod:L --seed 11 --max-examples 20 --no-stats")


def test_adversary_family_reaches_the_verdict_and_its_replays() -> None:
    context = RunContext(5, None, "mlp")
    assert context.pytest_flags() == ["--grl-seed", "5", "--grl-adversary", "mlp"]
    commands = replay_commands("t.py::T::test_label_removed", context, spec="pkg.mod:L",
                               cli_seed=11, statistical=True, adversary="mlp")
    assert commands[0] == "pytest t.py::T::test_label_removed --grl-seed 5 --grl-adversary mlp"
    assert commands[1].endswith("grl-props check pkg.mod:L --seed 11 --no-properties "
                                "--adversary mlp")
    with pytest.raises(ValueError, match="adversary must be one of linear, mlp"):
        conformance_suite("grl_props:GradientReversal", adversary="transformer")
    with pytest.raises(ValueError, match="timeout must be seconds above 0"):
        conformance_suite("grl_props:GradientReversal", timeout=0)
    with pytest.raises(ValueError, match="max_examples must be an integer >= 1"):
        conformance_suite("grl_props:GradientReversal", max_examples=0)


def test_grl_adversary_is_a_known_choice_shown_in_the_header(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:randomly", "--grl-adversary", "mlp")
    assert result.ret == pytest.ExitCode.OK
    assert any("adversary family mlp" in line for line in result.stdout.lines)
    bad = pytester.runpytest_subprocess("--grl-adversary", "svm")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--grl-adversary: invalid choice: 'svm'*"])


def test_plugin_choices_match_the_library() -> None:
    from grl_props import pytest_plugin
    from grl_props.adapters import CLAIMS
    from grl_props.properties import TIERS
    from grl_props.testing import PROFILES

    assert pytest_plugin.TIER_CHOICES == TIERS
    assert pytest_plugin.PROFILE_CHOICES == tuple(PROFILES)
    assert pytest_plugin.CLAIM_CHOICES == CLAIMS


def test_isolated_property_runs_in_a_child_process(request: pytest.FixtureRequest,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from grl_props.properties import get
    from grl_props.testing import run_property_test

    record = tmp_path / "pids"
    monkeypatch.setenv("GRL_PROPS_TEST_PID_FILE", str(record))
    result = run_property_test(f"{PROCESS_LAYERS}:RecordsProcess", get("forward_identity"),
                               nodeid=request.node.nodeid, context=RunContext(),
                               max_examples=5, isolate=True, timeout=60)
    assert result.status == "pass", result.detail
    ran_in = {int(line.split()[0]) for line in record.read_text().splitlines()}
    # a child for grl-props' first call of the layer, one for the property
    assert result.pid in ran_in and len(ran_in) == 2 and os.getpid() not in ran_in


def test_conformance_suite_refuses_unknown_claims() -> None:
    with pytest.raises(ValueError, match="claims must be a tuple of names among"):
        conformance_suite("grl_props:GradientReversal", claims=("torchscipt",))
    suite = conformance_suite("grl_props:GradientReversal", claims=("torchscript",),
                              tiers=("compat",))
    assert "test_torchscript" in vars(suite)


USER_CONFTEST = """
from hypothesis import settings

settings.register_profile("mine", max_examples=7, deadline=None, database=None)
settings.load_profile("mine")
"""

USER_TESTS = """
import os

from hypothesis import given, settings
from hypothesis import strategies as st


@given(st.integers())
def test_users_own_property(x):
    with open(os.environ["USER_EXAMPLES_FILE"], "a") as stream:
        stream.write(f"{x}\\n")


def test_users_profile_is_still_loaded():
    assert settings.get_current_profile_name() == "mine"
    assert settings.default.max_examples == 7
"""


@pytest.mark.parametrize("profile", [None, "ci"])
def test_a_users_own_hypothesis_tests_keep_their_settings(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          profile: str | None) -> None:
    """With grl-props installed and --grl-profile given, the project's own @given test runs
    under the project's own profile (7 examples), next to a grl-props test."""
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_users=USER_TESTS, cellcap_layer=EXAMPLE_LAYER.read_text())
    pytester.makepyfile(test_cellcap=_suite_line("cellcap_layer", "GradientReverseModule",
                                                 statistical=False))
    examples = pytester.path / "examples.txt"
    monkeypatch.setenv("USER_EXAMPLES_FILE", str(examples))
    args = ["-p", "no:randomly", "-k", "users or forward_identity"]
    if profile is not None:
        args += ["--grl-profile", profile]
    result, outcomes = _run(pytester, *args)
    assert result.ret == 0, result.stdout.str()
    assert set(outcomes.values()) == {"passed"} and len(outcomes) == 3, outcomes
    assert len(examples.read_text().splitlines()) == 7  # the user's profile, not grl-props'
    if profile is not None:
        result.stdout.fnmatch_lines([f"grl-props: base seed 0 *, profile {profile} (* examples "
                                     "per property, grl-props tests only)*"])


def test_example_project_passes_its_own_property_suite(pytester: pytest.Pytester) -> None:
    """examples/cellcap_style as its users run it (the slow model-level verdict left out)."""
    result, outcomes = _run(pytester, "-p", "no:randomly", "-c", str(EXAMPLE / "pyproject.toml"),
                            "--rootdir", str(EXAMPLE), "-m", "not grl_statistical",
                            str(EXAMPLE / "tests"))
    assert result.ret == 0, result.stdout.str()
    suite = "tests.test_gradient_reversal.TestGradientReverseModule"
    assert set(outcomes) == {f"{suite}::{name}" for name in _CORE_TESTS}
    result.stdout.fnmatch_lines(["*1 deselected*"])


ROUNDING = '''
import torch


def ste_round(x):
    return x + (torch.round(x) - x).detach()


def plain_round(x):
    return torch.round(x)
'''


def test_grl_contract_runs_that_contract_s_battery(pytester: pytest.Pytester) -> None:
    """--grl-contract ste-round: the contract's own properties, a plain round fails its VJP, the
    replay keeps the contract, and label_removed skips saying why."""
    pytester.makepyfile(rounding=ROUNDING)
    result, outcomes = _run(
        pytester, "-p", "no:randomly", "--grl-impl", "rounding.py:ste_round",
        "--grl-impl", "rounding.py:plain_round", "--grl-contract", "ste-round",
        "-k", "forward_matches_contract or vjp_matches_contract or label_removed", "-v", "-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines([
        "grl-impl?rounding.py:ste_round?::forward_matches_contract PASSED*",
        "grl-impl?rounding.py:ste_round?::vjp_matches_contract PASSED*",
        "grl-impl?rounding.py:plain_round?::vjp_matches_contract FAILED*",
        "*--grl-contract ste-round*",
        "*statistical verdict not run*ste-round contract does not promise*",
    ])
    assert "forward_identity" not in result.stdout.str()
    assert sorted(outcomes.values()).count("passed") == 3
