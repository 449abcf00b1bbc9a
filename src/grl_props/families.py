"""Adversary families of the statistical verdict: names only, importable without torch.

Each family pairs the adversary trained behind the layer with the probe family that judges the
latents afterwards: ``linear`` (a linear adversary; judged by a logistic-regression probe) and
``mlp`` (an MLP adversary of CellCap's shape; judged by an MLP probe). The pytest plugin reads
these names before torch is imported.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["ADVERSARY_FAMILIES", "DEFAULT_ADVERSARY", "JUDGED_PROBE", "AdversaryFamily"]

AdversaryFamily = Literal["linear", "mlp"]
#: Adversary families, in the order the CLI lists them.
ADVERSARY_FAMILIES: tuple[AdversaryFamily, ...] = ("linear", "mlp")
#: The family ``grl-props check``, the pytest plugin and ``conformance_suite`` use by default.
DEFAULT_ADVERSARY: AdversaryFamily = "linear"
#: The probe that judges each family's latents (``grl_props.probes.ProbeConfig.name``).
JUDGED_PROBE: dict[str, str] = {"linear": "logistic", "mlp": "mlp"}
