"""The pytest face of grl-props: a one-line conformance suite, and what the plugin runs.

Contract
--------
``TestMyGRL = conformance_suite(MyGRL)`` in any test module gives a class that pytest collects:

* one method ``test_<property>`` per registered property of ``tiers`` (default ``("core",)``),
  marked ``grl_property``; it passes when the property passes, is skipped (with the reason) when
  the property does not apply to the layer, and fails (with the shrunk counterexample) when the
  property fails or the layer raises;
* ``test_label_removed``, marked ``grl_statistical`` (``statistical=True``, the default): trains
  the reference experiment through the layer (:func:`grl_props.label_removal.check_label_removal`)
  and fails unless the verdict is ``pass``; the verdict's summary is shown either way it fails.

Every test's randomness comes from its own node id: its seed is :func:`derive_seed` of the node
id and the base seed (``--grl-seed N``, default 0; ``--grl-vary-seed`` draws one and prints
it). The Hypothesis seed, the global ``random``/NumPy/torch seeds and the statistical seed set
all follow from that seed, so a plain run, ``pytest -n auto`` and ``pytest -p randomly`` give
the same verdicts, and a failure prints the exact command that replays it.

Tests run torch single-threaded (:func:`torch_threads`, restored afterwards). Properties run in
the pytest process (``isolate=False``, the default): fast, and a debugger or
``--pdb`` sees the layer. ``isolate=True`` runs each one in a child process with ``timeout``
seconds, as the ``grl-props`` CLI does (:func:`grl_props.runner.run_battery`: a child of a fork
server that loads the layer by name, or a fork of the pytest process for a layer that cannot be
named, with a warning), for layers that may hang or crash the interpreter.

Nothing happens at import or at class creation beyond building the class: the layer is loaded
(``load_layer``) inside each test, so a spec that does not import fails its tests with one
sentence, and pytest-xdist workers share no state.

Profiles (``--grl-profile``, :data:`PROFILES`) set one thing: the examples per property of
every grl-props test (overriding ``max_examples`` given in code): ``ci`` 100 (the CLI's
default, ``RunOptions.max_examples``), ``dev`` 100 (today the same as ``ci``), ``thorough`` 1000.
Everything else about a grl-props test's Hypothesis run is fixed whatever the profile
(:meth:`grl_props.runner.RunOptions.hypothesis_settings`): the seed derived from the node id, no
example database, no deadline, every health check on but ``too_slow``. A profile applies to
grl-props tests only: the plugin loads no Hypothesis profile, so a project's own ``@given``
tests keep the settings and profile the project chose. :func:`register_profiles` registers the
same settings as Hypothesis profiles ``grl-<name>``, for a user who wants them elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import math
import os
import random
import shlex
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import settings

from grl_props.adapters import CLAIMS, LayerUnderTest, SpecError, load_layer
from grl_props.contracts import (
    DEFAULT_CONTRACT,
    Contract,
    ContractError,
    contract_reference,
    resolve_contract,
    verdict_not_run,
)
from grl_props.families import ADVERSARY_FAMILIES
from grl_props.properties import TIERS, Property, all_properties
from grl_props.runner import PropertyResult, RunOptions, run_battery, run_preflight, run_property

__all__ = [
    "PROFILES",
    "RunContext",
    "conformance_suite",
    "derive_seed",
    "layer_spec",
    "register_profiles",
    "replay_commands",
    "run_property_test",
    "run_statistical_test",
    "seed_everything",
    "torch_threads",
]

#: What each ``--grl-profile`` sets for grl-props tests: name → settings keyword arguments.
#: Only ``max_examples`` is read; the rest of a grl-props test's settings is fixed (see above).
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": RunOptions.max_examples},
    "dev": {"max_examples": 100},
    "thorough": {"max_examples": 1000},
}

#: Statistical seeds are kept below this so ``grl-props check --seed S`` stays readable.
_STATISTICAL_SEED_RANGE = 2**24


def register_profiles() -> None:
    """Register Hypothesis profiles ``grl-ci``, ``grl-dev``, ``grl-thorough``: the settings a
    grl-props test runs with under each :data:`PROFILES` entry. Registering loads nothing;
    grl-props never calls ``settings.load_profile``."""
    for name, values in PROFILES.items():
        settings.register_profile(
            f"grl-{name}", RunOptions(max_examples=int(values["max_examples"])).hypothesis_settings())


def derive_seed(nodeid: str, base_seed: int = 0, *, below: int = 2**31) -> int:
    """A stable seed in ``[0, below)`` from a test's node id and the base seed.

    Stable across processes, Python versions and runs (BLAKE2b, not ``hash()``), so the same
    test with the same base seed always gets the same seed, wherever and in whatever order it runs.
    """
    digest = hashlib.blake2b(f"{int(base_seed)}\x00{nodeid}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % below


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads inside the block, restoring the count afterwards.

    grl-props tests run single-threaded: the tensors are tiny, so threads only cost, and on a
    2-core machine running ``pytest -n auto`` two threaded workers oversubscribe the cores
    (measured: one training seed of the example model took 42 s with 2 threads under load,
    2.2 s with 1). It is also how the CLI runs each property, so its replays match.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def seed_everything(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and torch's default generator with ``seed``."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class RunContext:
    """What the command line contributes to a grl-props test: base seed, profile, adversary.

    Read from pytest's config with :meth:`from_config`; without the plugin (``-p no:grl_props``)
    the defaults apply: base seed 0, no profile, no adversary family chosen (the code's or
    :data:`~grl_props.families.DEFAULT_ADVERSARY`).
    """

    base_seed: int = 0
    profile: str | None = None
    adversary: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> RunContext:
        seed = config.getoption("grl_seed", default=None)
        return cls(0 if seed is None else int(seed), config.getoption("grl_profile", default=None),
                   config.getoption("grl_adversary", default=None))

    def max_examples(self, in_code: int | None) -> int:
        """Examples per property: the profile's when one was chosen, else ``in_code``, else the
        CLI's default (``RunOptions.max_examples``)."""
        if self.profile is not None:
            return int(PROFILES[self.profile]["max_examples"])
        return RunOptions.max_examples if in_code is None else in_code

    def pytest_flags(self) -> list[str]:
        flags = ["--grl-seed", str(self.base_seed)]
        if self.profile is not None:
            flags += ["--grl-profile", self.profile]
        if self.adversary is not None:
            flags += ["--grl-adversary", self.adversary]
        return flags


def layer_spec(layer: Any) -> str | None:
    """A spec string that ``grl-props check`` can load for ``layer``, or ``None``.

    Strings are returned as given; classes and functions become ``module:qualname`` when they
    live at a module's top level (not in ``__main__``, not defined inside a function).
    """
    if isinstance(layer, str):
        return layer
    if not (isinstance(layer, type) or inspect.isfunction(layer)):
        return None  # an instance: the CLI would build a fresh one, not this one
    module = getattr(layer, "__module__", None)
    qualname = getattr(layer, "__qualname__", "")
    if not module or module == "__main__" or "<locals>" in qualname:
        return None
    return f"{module}:{qualname}"


def _pythonpath_prefix(spec: str) -> str:
    """``PYTHONPATH=dir `` when the spec's package is importable only from a non-site directory."""
    module_name = spec.partition(":")[0]
    if module_name.endswith(".py"):
        return ""
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not path:
        return ""
    root = os.path.dirname(os.path.abspath(path))
    for _ in range(module_name.count(".")):
        root = os.path.dirname(root)
    if "site-packages" in root or "dist-packages" in root:
        return ""
    return f"PYTHONPATH={shlex.quote(os.path.relpath(root))} "


def replay_commands(nodeid: str | None, context: RunContext, *, spec: str | None = None,
                    cli_seed: int | None = None, max_examples: int | None = None,
                    alpha_arg: str | None = None, statistical: bool = False,
                    pytest_args: Sequence[str] = (), claims: Sequence[str] = (),
                    adversary: str | None = None, contract: str | None = None) -> list[str]:
    """Shell commands that replay one grl-props test: pytest first, then the CLI when possible.

    ``nodeid`` is replayed as ``pytest 'nodeid' --grl-seed N`` (exact); when ``nodeid`` is not a
    path pytest can select, give ``pytest_args`` (e.g. ``--grl-impl SPEC -k NAME``) instead.
    With ``spec`` and ``cli_seed``, ``grl-props check SPEC --seed S`` replays the same property
    run (same Hypothesis seed and examples) or the same statistical seed set (with
    ``adversary``, that family's); ``contract`` (a name or spec other than ``reverse``) is
    passed as ``--contract``.
    """
    words = ["pytest", *([nodeid] if nodeid else []), *pytest_args, *context.pytest_flags()]
    commands = [" ".join(shlex.quote(w) for w in words)]
    if spec is not None and cli_seed is not None:
        cli = ["grl-props", "check", spec, "--seed", str(cli_seed)]
        cli += ["--no-properties"] if statistical else [
            "--max-examples", str(max_examples or RunOptions.max_examples), "--no-stats"]
        if contract and contract != DEFAULT_CONTRACT:
            cli += ["--contract", contract]
        if alpha_arg:
            cli += ["--alpha-arg", alpha_arg]
        for claim in claims:
            cli += ["--claim", claim]
        if statistical and adversary:
            cli += ["--adversary", adversary]
        commands.append(_pythonpath_prefix(spec) + " ".join(shlex.quote(w) for w in cli))
    return commands


def _format_replay(commands: Sequence[str]) -> str:
    lines = [f"replay: {commands[0]}"]
    lines += [f"    or: {c}" for c in commands[1:]]
    return "\n".join(lines)


def _replay_spec(layer: LayerUnderTest) -> str | None:
    """The spec the CLI can load to replay ``layer``: the string it was loaded from, else one
    derived from the object (:func:`layer_spec`), else ``None`` (no CLI replay line)."""
    return layer.spec or layer_spec(layer.obj)


def _load(layer: Any, alpha_arg: str | None, claims: Sequence[str] = (),
          contract: str | Contract | None = None) -> LayerUnderTest:
    try:
        return load_layer(layer, alpha_arg=alpha_arg, claims=tuple(claims), contract=contract)
    except SpecError as exc:
        pytest.fail(f"grl-props cannot load the layer under test: {exc}", pytrace=False)


def run_property_test(layer: Any, prop: Property, *, nodeid: str, context: RunContext,
                      max_examples: int | None = None, alpha_arg: str | None = None,
                      timeout: float = RunOptions.timeout, isolate: bool = False,
                      pytest_args: Sequence[str] = (), replay_nodeid: bool = True,
                      claims: Sequence[str] = (), contract: str | Contract | None = None
                      ) -> PropertyResult:
    """Run ``prop`` on ``layer`` as one pytest test: pass, ``pytest.skip`` or ``pytest.fail``.

    ``layer`` is anything :func:`load_layer` accepts (or a :class:`LayerUnderTest`); ``claims``
    adds supports it claims (``torchscript``, ``torch_export``); ``contract`` is what it promises
    (a name, a ``package.module:NAME`` spec or a Contract; default ``reverse``; ignored for a
    :class:`LayerUnderTest`, which carries its own). The seed is :func:`derive_seed`
    of ``nodeid``; the failure message carries the property's detail (the shrunk
    counterexample), its remedy (what to change in the layer) and :func:`replay_commands`.
    A layer that cannot run at all (:data:`~grl_props.runner.PREFLIGHT`) fails every property
    test with the same one sentence, and no property runs.
    """
    if isinstance(layer, LayerUnderTest):
        under_test = layer
        if claims:
            under_test = dataclasses.replace(layer, claims=layer.claims | frozenset(claims))
    else:
        under_test = _load(layer, alpha_arg, claims, contract)
    seed = derive_seed(nodeid, context.base_seed)
    seed_everything(seed)
    examples = context.max_examples(max_examples)
    options = RunOptions(max_examples=examples, seed=seed, timeout=timeout, isolate=isolate)
    if isolate:
        report = run_battery(under_test, options=options, properties=[prop])
        if not report.isolation.startswith("child process per property (forkserver"):
            warnings.warn(f"grl-props isolate=True: {report.isolation}", stacklevel=2)
        result = report.properties[0]
    else:
        with torch_threads(1):
            cannot = run_preflight(under_test, options)
            result = run_property(under_test, prop, options) if cannot is None else (
                PropertyResult(prop.name, prop.tier, cannot.status, f"not run: {cannot.detail}"))
    if result.status == "skip":
        pytest.skip(f"{prop.name}: {result.detail}")
    if result.status in ("fail", "error"):
        commands = replay_commands(
            nodeid if replay_nodeid else None, context, spec=_replay_spec(under_test),
            cli_seed=seed, max_examples=examples, alpha_arg=alpha_arg, pytest_args=pytest_args,
            claims=sorted(under_test.claims), contract=_contract_ref(under_test))
        verb = "failed" if result.status == "fail" else "errored"
        remedy = f"\nremedy: {result.remedy}" if result.remedy else ""
        described = prop.description_for(under_test.contract)
        pytest.fail(
            f"grl-props property {prop.name} ({prop.tier}: {described}) {verb} on "
            f"{under_test.name}:\n{result.detail}{remedy}\n\n{_format_replay(commands)}",
            pytrace=False,
        )
    return result


def run_statistical_test(layer: Any, *, nodeid: str, context: RunContext,
                         alpha_arg: str | None = None, pytest_args: Sequence[str] = (),
                         replay_nodeid: bool = True, adversary: str | None = None,
                         progress: Callable[[str, int, int], None] | None = None) -> Any:
    """Judge label removal through ``layer`` as one pytest test; fails unless the verdict is pass.

    The statistical seed is :func:`derive_seed` of ``nodeid`` (below 2**24), so each test has
    its own seed set. The adversary family is the command line's (``--grl-adversary``), else
    ``adversary``, else :data:`~grl_props.families.DEFAULT_ADVERSARY`. Returns the
    :class:`~grl_props.label_removal.StatisticalResult` on ``pass``.
    """
    from grl_props.families import DEFAULT_ADVERSARY
    from grl_props.label_removal import StatisticalError, check_label_removal

    family = context.adversary or adversary or DEFAULT_ADVERSARY

    under_test = layer if isinstance(layer, LayerUnderTest) else _load(layer, alpha_arg)
    why_not = verdict_not_run(under_test.contract)
    if why_not is not None:
        pytest.skip(why_not)
    seed = derive_seed(nodeid, context.base_seed, below=_STATISTICAL_SEED_RANGE)
    seed_everything(seed)
    commands = replay_commands(nodeid if replay_nodeid else None, context,
                               spec=_replay_spec(under_test),
                               cli_seed=seed, alpha_arg=alpha_arg, statistical=True,
                               pytest_args=pytest_args, adversary=family)
    try:
        with torch_threads(1):
            result = check_label_removal(under_test, seed=seed, adversary=family,
                                         progress=progress)
    except StatisticalError as exc:
        pytest.fail(f"grl-props statistical check could not run: {exc}\n\n"
                    f"{_format_replay(commands)}", pytrace=False)
    if result.verdict != "pass":
        pytest.fail(f"grl-props statistical verdict on {under_test.name} is {result.verdict!r}, "
                    f"not 'pass':\n{result.summary()}\n\n{_format_replay(commands)}",
                    pytrace=False)
    return result


def _contract_ref(layer: LayerUnderTest) -> str | None:
    """How ``--contract`` names the layer's contract in a replay command: the name or spec it was
    given by, else its module-level name; ``None`` (no ``--contract``) when it has neither."""
    return layer.contract_spec or contract_reference(layer.contract)


_OPTIONS = ("max_examples", "seed", "alpha_arg", "timeout", "isolate", "claims", "adversary",
            "contract")


def conformance_suite(layer: Any, *, tiers: Sequence[str] = ("core",), statistical: bool = True,
                      **options: Any) -> type:
    """A pytest test class checking ``layer`` against grl-props; assign it to a ``Test*`` name.

    ``layer``: a spec string (``package.module:Name``, ``path/file.py:Name``) or any object
    :func:`~grl_props.adapters.load_layer` accepts. ``tiers``: property tiers to generate
    methods for (from :data:`~grl_props.properties.TIERS`). ``statistical``: add
    ``test_label_removed``. ``options``: ``max_examples`` (per property; default
    ``RunOptions.max_examples``), ``seed`` (base seed when the command line gives none;
    default 0), ``alpha_arg``, ``timeout`` (seconds per property when isolated; default 120),
    ``isolate`` (default False), ``claims`` (supports the layer claims, checked by the compat
    tier: ``("torchscript", "torch_export")``; default none beyond the layer's own
    ``__grl_props_claims__``), ``adversary`` (the statistical verdict's adversary family,
    ``"linear"`` or ``"mlp"``; ``--grl-adversary`` overrides it; default
    :data:`~grl_props.families.DEFAULT_ADVERSARY`), ``contract`` (what the layer promises: a
    built-in name such as ``"scale"`` or ``"ste-round"``, a ``package.module:NAME`` spec or a
    :class:`~grl_props.contracts.Contract`; default ``"reverse"``). Under a contract other than
    ``reverse`` the properties are that contract's battery, and ``test_label_removed`` skips,
    saying that the statistical verdict judges reversals only.

    Raises ``ValueError``/``TypeError`` at once for an unknown tier or option.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"conformance_suite() got unknown options {unknown}; "
                        f"accepted: {', '.join(_OPTIONS)}")
    if isinstance(tiers, str):
        tiers = (tiers,)
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise ValueError(f"conformance_suite() tiers must be among {TIERS}, got {bad}")
    max_examples = options.get("max_examples")
    alpha_arg = options.get("alpha_arg")
    timeout = float(options.get("timeout", RunOptions.timeout))
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"conformance_suite() timeout must be seconds above 0, got {timeout}")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise ValueError(f"conformance_suite() max_examples must be an integer >= 1, got "
                         f"{max_examples!r}")
    isolate = bool(options.get("isolate", False))
    claims = options.get("claims", ())
    if isinstance(claims, str) or not set(claims) <= set(CLAIMS):
        raise ValueError(f"conformance_suite() claims must be a tuple of names among {CLAIMS}, "
                         f"got {claims!r}")
    claims = tuple(claims)
    code_seed = options.get("seed")
    adversary = options.get("adversary")
    if adversary is not None and adversary not in ADVERSARY_FAMILIES:
        raise ValueError(f"conformance_suite() adversary must be one of "
                         f"{', '.join(ADVERSARY_FAMILIES)}, got {adversary!r}")

    contract_option = options.get("contract")
    if contract_option is None and isinstance(layer, LayerUnderTest):
        contract_option = layer.contract  # a loaded layer carries its contract
    try:
        contract = resolve_contract(contract_option)
    except ContractError as exc:
        raise ValueError(f"conformance_suite() contract: {exc}") from None
    if isinstance(layer, LayerUnderTest) and layer.contract is not contract:
        raise ValueError(f"conformance_suite() contract {contract.name!r} differs from the "
                         f"{layer.contract.name!r} contract the layer was loaded with")

    def context_of(request: pytest.FixtureRequest) -> RunContext:
        context = RunContext.from_config(request.config)
        cli_seed_given = request.config.getoption("grl_seed", default=None) is not None
        if code_seed is not None and not cli_seed_given:
            context = dataclasses.replace(context, base_seed=int(code_seed))
        return context

    def property_test(prop: Property) -> Callable[..., None]:
        def test(self: Any, request: pytest.FixtureRequest) -> None:
            run_property_test(layer, prop, nodeid=request.node.nodeid,
                              context=context_of(request), max_examples=max_examples,
                              alpha_arg=alpha_arg, timeout=timeout, isolate=isolate,
                              claims=claims, contract=contract_option)

        test.__name__ = test.__qualname__ = f"test_{prop.name}"
        test.__doc__ = f"{prop.tier}: {prop.description_for(contract)}"
        return pytest.mark.grl_property(test)

    def test_label_removed(self: Any, request: pytest.FixtureRequest) -> None:
        why_not = verdict_not_run(contract)
        if why_not is not None:
            pytest.skip(why_not)
        run_statistical_test(layer, nodeid=request.node.nodeid, context=context_of(request),
                             alpha_arg=alpha_arg, adversary=adversary)

    test_label_removed.__doc__ = "training through the layer removes the label (sign test)"
    namespace: dict[str, Any] = {
        "__doc__": f"grl-props conformance suite for {_display(layer)} (tiers: {', '.join(tiers)})",
        "grl_layer": layer,
        "grl_tiers": tuple(tiers),
    }
    for prop in all_properties(tuple(tiers), contract=contract):
        namespace[f"test_{prop.name}"] = property_test(prop)
    if statistical:
        namespace["test_label_removed"] = pytest.mark.grl_statistical(test_label_removed)
    cls = type(f"TestConformance_{_identifier(_display(layer))}", (), namespace)
    caller = sys._getframe(1).f_globals.get("__name__")
    if isinstance(caller, str):
        cls.__module__ = caller
    return cls


def _display(layer: Any) -> str:
    if isinstance(layer, str):
        return layer
    return getattr(layer, "__qualname__", None) or type(layer).__qualname__


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)
