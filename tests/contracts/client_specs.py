"""Published custom-gradient layers, named so that grl-props can load them.

kornia's estimator is a module wrapping a target function, so its rounding and sign estimators
are instances here; pygda's package ``__init__`` imports torch_geometric, so its layer is loaded
from its file (``PYGDA_REVERSE_LAYER``), which imports only torch.
"""

from __future__ import annotations

import importlib.util
import os

import torch
from kornia.grad_estimator import StraightThroughEstimator

#: kornia 0.8.2: ``StraightThroughEstimator(torch.round)``, the documented use.
kornia_ste_round = StraightThroughEstimator(torch.round)
#: kornia 0.8.2: ``StraightThroughEstimator(torch.sign)``.
kornia_ste_sign = StraightThroughEstimator(torch.sign)


def _pygda_file() -> str:
    spec = importlib.util.find_spec("pygda")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("pygda is not installed (pip install --no-deps pygda==1.2.1)")
    return os.path.join(list(spec.submodule_search_locations)[0], "nn", "reverse_layer.py")


#: The spec of pygda 1.2.1's ``GradReverse``, loaded from its file.
PYGDA_REVERSE_LAYER = f"{_pygda_file()}:GradReverse"
