"""The model: does training through the layer remove the label from the basal latent?

Uses ``grl_props.stats.assert_label_removed`` (skipped when the installed grl-props lacks it)
on cells simulated by ``grl_props.experiment.data``; marked ``grl_statistical`` so
``pytest -m "not grl_statistical"`` leaves it out.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from cellcap_style.model import CellCapStyleModel, fit

stats = pytest.importorskip("grl_props.stats")
if not hasattr(stats, "assert_label_removed"):
    pytest.skip("this grl-props has no stats.assert_label_removed", allow_module_level=True)
from grl_props.experiment.data import SimulationConfig, simulate  # noqa: E402
from grl_props.testing import torch_threads  # noqa: E402


def embed(seed: int, *, reverse: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Train one model on seed ``seed``'s cells; latents and labels of fresh cells.

    Single-threaded: tiny tensors, and threads oversubscribe a small machine under xdist.
    """
    data = simulate(SimulationConfig(), seed)
    torch.manual_seed(seed)
    n_labels = int(max(data.y.max(), data.y_probe.max())) + 1
    with torch_threads(1):
        model = CellCapStyleModel(data.x.shape[1], n_labels, reverse=reverse)
        fit(model, data.x, data.y)
        with torch.no_grad():
            return model.embed(data.x_probe).numpy(), data.y_probe.numpy()


@pytest.mark.grl_statistical
def test_training_through_the_layer_removes_the_label() -> None:
    result = stats.assert_label_removed(embed, control=partial(embed, reverse=False))
    print(result.summary())
