"""pytest plugin of grl-props (entry point ``pytest11: grl_props``): options, markers, items.

This module only wires pytest to the library: every test it makes runs through
:mod:`grl_props.testing`, which owns seeds, profiles, verdicts and replay commands.

Options
-------
``--grl-impl SPEC`` (repeatable)
    Run the battery on the layer ``SPEC`` (``package.module:Name`` or ``path/file.py:Name``).
``--grl-tier TIER`` (repeatable; ``core``, ``compat``, ``hygiene`` or ``all``; default ``core``)
    Tiers of properties that ``--grl-impl`` turns into tests.
``--grl-alpha-arg NAME``
    Constructor argument that holds alpha, for ``--grl-impl`` layers the adapter cannot guess.
``--grl-seed N`` / ``--grl-vary-seed``
    Base seed of every grl-props test (default 0), or a fresh one drawn for this run and
    printed in the header; either way each test's seed is derived from its node id and the base.
``--grl-claim torchscript|torch_export`` (repeatable)
    Check these supports on the ``--grl-impl`` layers (the compat properties ``torchscript`` and
    ``torch_export`` run only where a layer claims them).
``--grl-contract NAME``
    What the ``--grl-impl`` layers promise: ``reverse`` (default), ``scale``, ``stop``,
    ``ste-round``, ``ste-sign`` or ``package.module:NAME`` of a Contract; their battery is that
    contract's, and the label-removal item skips under any contract but ``reverse``.
``--grl-adversary linear|mlp``
    Adversary family of every label-removal verdict (default: the test's own, else
    ``families.DEFAULT_ADVERSARY``); its probe family is judged.
``--grl-profile ci|dev|thorough``
    The examples per property of every grl-props test: 100, 100, 1000 (see
    :mod:`grl_props.testing`). It changes grl-props tests only: the plugin loads no Hypothesis
    profile, so the project's own Hypothesis tests keep their settings.

Markers: ``grl_property`` (one property on one layer) and ``grl_statistical`` (the label-removal
verdict), so ``-m "not grl_statistical"`` leaves out the slow training runs.

How ``--grl-impl`` items are made
---------------------------------
One :class:`GrlLayer` collector per spec, attached to the session in
``pytest_collection_modifyitems`` (``tryfirst``, so ``-k``/``-m``/``--deselect`` apply to its
items), holding one :class:`GrlPropertyItem` per property of the chosen tiers and one
:class:`GrlStatisticalItem`. Node ids look like ``grl-impl[SPEC]::forward_identity``; they are
built from the command line alone, so every pytest-xdist worker collects the same items in the
same order. They are not file paths, so failures print ``pytest --grl-impl SPEC -k NAME ...``
(and the ``grl-props check`` equivalent) as replay commands. A spec that cannot be loaded stops
the run at configuration time with one sentence (``pytest.UsageError``).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from grl_props.families import ADVERSARY_FAMILIES, DEFAULT_ADVERSARY  # names only, no torch

if TYPE_CHECKING:
    from grl_props.adapters import LayerUnderTest
    from grl_props.properties import Property
    from grl_props.testing import RunContext

# Literal copies, so that pytest starts without importing torch in projects that never use
# grl-props options (tests/faces checks they equal properties.TIERS and testing.PROFILES).
TIER_CHOICES = ("core", "compat", "hygiene")
PROFILE_CHOICES = ("ci", "dev", "thorough")
CLAIM_CHOICES = ("torchscript", "torch_export")

_LAYERS = pytest.StashKey["list[tuple[str, LayerUnderTest]]"]()


def _context(config: pytest.Config) -> RunContext:
    from grl_props.testing import RunContext

    return RunContext.from_config(config)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("grl-props", "grl-props: gradient reversal layer conformance")
    group.addoption("--grl-impl", action="append", default=[], metavar="SPEC", dest="grl_impl",
                    help="run the grl-props battery on this layer (package.module:Name or "
                         "path/file.py:Name); repeatable")
    group.addoption("--grl-tier", action="append", default=[], dest="grl_tier",
                    choices=[*TIER_CHOICES, "all"],
                    help="property tiers --grl-impl runs (repeatable; default core)")
    group.addoption("--grl-alpha-arg", default=None, metavar="NAME", dest="grl_alpha_arg",
                    help="constructor argument holding alpha, for --grl-impl layers")
    group.addoption("--grl-seed", type=int, default=None, metavar="N", dest="grl_seed",
                    help="base seed of grl-props tests (default 0); each test derives its own "
                         "seed from this and its node id")
    group.addoption("--grl-vary-seed", action="store_true", default=False, dest="grl_vary_seed",
                    help="draw a fresh base seed for this run (printed in the header)")
    group.addoption("--grl-claim", action="append", default=[], dest="grl_claim",
                    choices=CLAIM_CHOICES,
                    help="check this support on --grl-impl layers (repeatable)")
    group.addoption("--grl-contract", default=None, metavar="NAME", dest="grl_contract",
                    help="what the --grl-impl layers promise: reverse (default), scale, stop, "
                         "ste-round, ste-sign, or package.module:NAME of your own Contract")
    group.addoption("--grl-adversary", choices=ADVERSARY_FAMILIES, default=None,
                    dest="grl_adversary",
                    help="adversary family of every grl-props label-removal verdict: linear "
                         "(judged by logistic-regression probes) or mlp (judged by MLP probes); "
                         f"default: the test's own, else {DEFAULT_ADVERSARY}")
    group.addoption("--grl-profile", choices=PROFILE_CHOICES, default=None, dest="grl_profile",
                    help="examples per property of grl-props tests: ci 100, dev 100, thorough "
                         "1000 (grl-props tests only: no Hypothesis profile is loaded)")
    group.addoption("--grl-jobs", type=int, default=None, metavar="N", dest="grl_jobs",
                    help="worker processes for the seeds of assert_label_removed calls that "
                         "give no n_jobs (joblib; -1 for every core); verdicts are the same "
                         "for any N")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "grl_property: one grl-props property checked on one gradient reversal layer")
    config.addinivalue_line(
        "markers", "grl_statistical: grl-props label-removal verdict (trains models; slow)")
    _settle_seed(config)
    # --grl-profile is read by each grl-props test (testing.RunContext); loading a Hypothesis
    # profile here would change every Hypothesis test of the session, the project's own included.
    config.stash[_LAYERS] = [(spec, _load(spec, config)) for spec in config.getoption("grl_impl")]
    _set_jobs(config)


_JOBS_BEFORE = pytest.StashKey["str | None"]()


def _set_jobs(config: pytest.Config) -> None:
    """--grl-jobs N: the n_jobs of assert_label_removed calls that give none, for this session."""
    from grl_props.parallel import JOBS_VARIABLE

    jobs = config.getoption("grl_jobs")
    if jobs is None:
        return
    if jobs == 0:
        raise pytest.UsageError("--grl-jobs must be a whole number other than 0 (-1 for every "
                                "core), got 0")
    config.stash[_JOBS_BEFORE] = os.environ.get(JOBS_VARIABLE)
    os.environ[JOBS_VARIABLE] = str(jobs)


def pytest_unconfigure(config: pytest.Config) -> None:
    from grl_props.parallel import JOBS_VARIABLE

    if _JOBS_BEFORE not in config.stash:
        return
    before = config.stash[_JOBS_BEFORE]
    if before is None:
        os.environ.pop(JOBS_VARIABLE, None)
    else:
        os.environ[JOBS_VARIABLE] = before


def _settle_seed(config: pytest.Config) -> None:
    """Fix the base seed: given, shared by the xdist controller, or drawn once (vary)."""
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "grl_seed" in worker_input:
        config.option.grl_seed = worker_input["grl_seed"]  # the controller checked and chose
        return
    seed, vary = config.getoption("grl_seed"), config.getoption("grl_vary_seed")
    if seed is not None and vary:
        raise pytest.UsageError("--grl-seed and --grl-vary-seed exclude each other; give one")
    if seed is not None and seed < 0:
        raise pytest.UsageError(f"--grl-seed must be 0 or more, got {seed}")
    if vary:
        config.option.grl_seed = random.SystemRandom().randrange(2**31)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: send the controller's base seed to each worker."""
    seed = node.config.getoption("grl_seed")
    if seed is not None:
        node.workerinput["grl_seed"] = seed


def _load(spec: str, config: pytest.Config) -> LayerUnderTest:
    from grl_props.adapters import SpecError, load_layer

    try:
        return load_layer(spec, alpha_arg=config.getoption("grl_alpha_arg"),
                          claims=tuple(config.getoption("grl_claim")),
                          contract=config.getoption("grl_contract"))
    except SpecError as exc:
        raise pytest.UsageError(f"--grl-impl {spec!r}: {exc}") from None


def pytest_report_header(config: pytest.Config) -> str:
    seed, profile = config.getoption("grl_seed"), config.getoption("grl_profile")
    seed = 0 if seed is None else seed
    how = "drawn by --grl-vary-seed" if config.getoption("grl_vary_seed") else "--grl-seed"
    line = f"grl-props: base seed {seed} ({how}; replay with --grl-seed {seed})"
    if profile is not None:
        from grl_props.testing import PROFILES

        line += (f", profile {profile} ({PROFILES[profile]['max_examples']} examples per "
                 "property, grl-props tests only)")
    adversary = config.getoption("grl_adversary")
    if adversary is not None:
        line += f", adversary family {adversary}"
    specs = [spec for spec, _ in config.stash.get(_LAYERS, [])]
    if specs:
        line += f", layers: {', '.join(specs)}"
    return line


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    layers = config.stash.get(_LAYERS, [])
    if not layers:
        return
    chosen = config.getoption("grl_tier") or ["core"]
    tiers = TIER_CHOICES if "all" in chosen else tuple(t for t in TIER_CHOICES if t in chosen)
    made: list[pytest.Item] = []
    for spec, layer in layers:
        name = f"grl-impl[{spec}]"
        collector = GrlLayer.from_parent(session, name=name, nodeid=name, spec=spec,
                                         layer=layer, tiers=tiers)
        report = collector.ihook.pytest_make_collect_report(collector=collector)
        session.ihook.pytest_collectreport(report=report)  # counted in "collected N items"
        made.extend(x for x in report.result if isinstance(x, pytest.Item))
    items[:0] = made


class GrlLayer(pytest.Collector):
    """The grl-props tests of one ``--grl-impl`` layer."""

    def __init__(self, *, spec: str, layer: LayerUnderTest, tiers: tuple[str, ...],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.layer, self.tiers = spec, layer, tiers

    def collect(self) -> Iterator[pytest.Item]:  # type: ignore[override]
        from grl_props.properties import all_properties

        for prop in all_properties(self.tiers, contract=self.layer.contract):
            yield GrlPropertyItem.from_parent(self, name=prop.name, prop=prop)
        yield GrlStatisticalItem.from_parent(self, name="label_removed")


class _GrlItem(pytest.Item):
    parent: GrlLayer

    def _replay_args(self) -> list[str]:
        args = ["--grl-impl", self.parent.spec, "-k", self.name]
        tiers = self.config.getoption("grl_tier")
        for tier in tiers:
            args += ["--grl-tier", tier]
        alpha_arg = self.config.getoption("grl_alpha_arg")
        if alpha_arg:
            args += ["--grl-alpha-arg", alpha_arg]
        for claim in self.config.getoption("grl_claim"):
            args += ["--grl-claim", claim]
        contract = self.config.getoption("grl_contract")
        if contract:
            args += ["--grl-contract", contract]
        return args

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.nodeid


class GrlPropertyItem(_GrlItem):
    """One property on one ``--grl-impl`` layer (marker ``grl_property``)."""

    def __init__(self, *, prop: Property, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.prop = prop
        self.add_marker(pytest.mark.grl_property)
        self.extra_keyword_matches.add(prop.tier)

    def runtest(self) -> None:
        from grl_props.testing import run_property_test

        run_property_test(self.parent.layer, self.prop, nodeid=self.nodeid,
                          context=_context(self.config),
                          alpha_arg=self.config.getoption("grl_alpha_arg"),
                          pytest_args=self._replay_args(), replay_nodeid=False,
                          contract=self.config.getoption("grl_contract"))


class GrlStatisticalItem(_GrlItem):
    """The label-removal verdict on one ``--grl-impl`` layer (marker ``grl_statistical``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker(pytest.mark.grl_statistical)

    def runtest(self) -> None:
        from grl_props.testing import run_statistical_test

        run_statistical_test(self.parent.layer, nodeid=self.nodeid,
                             context=_context(self.config),
                             alpha_arg=self.config.getoption("grl_alpha_arg"),
                             pytest_args=self._replay_args(), replay_nodeid=False)
