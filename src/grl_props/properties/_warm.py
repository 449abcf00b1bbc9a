"""Imported by the runner's fork server only: draw one example of every property's strategies, so
that each child forked from the server starts with Hypothesis' caches warm.

Devices are drawn as ``cpu`` only here, so that the server never asks CUDA anything (a process
that has asked cannot fork children that use CUDA); the children draw devices normally.
"""

from __future__ import annotations

from hypothesis import HealthCheck, Phase, given, settings

from grl_props import strategies
from grl_props.properties import all_properties


def _warm() -> None:
    # One draw per strategy and no check: the health checks have nothing to protect here.
    available = strategies.available_devices
    strategies.available_devices = lambda: ["cpu"]  # type: ignore[assignment]
    try:
        for prop in all_properties(contract=None):  # every contract's properties
            if prop.given:
                draw = given(**prop.given)(lambda **drawn: None)
                settings(max_examples=1, database=None, deadline=None, phases=(Phase.generate,),
                         suppress_health_check=list(HealthCheck))(draw)()
    finally:
        strategies.available_devices = available  # type: ignore[assignment]


try:
    _warm()
except Exception:  # noqa: BLE001 - warming is only an optimisation; the server must start
    pass
