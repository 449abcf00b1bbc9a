"""The model-level API on a small user-style model written in plain PyTorch."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from grl_stats_helpers import train_user_model  # this directory is on sys.path under pytest

from grl_props.stats import LabelRemovalResult, assert_label_removed


@cache
def _embed(seed: int, reverse: bool) -> tuple[np.ndarray, np.ndarray]:
    return train_user_model(seed, reverse=reverse)


def test_user_model_with_reversal_passes():
    result = assert_label_removed(lambda s: _embed(s, True), seeds=range(9),
                                  control=lambda s: _embed(s, False))
    assert isinstance(result, LabelRemovalResult)
    assert result.outcome == "pass"
    assert result.verdict.control_n_blind == 0
    assert set(result.scores[0].primary) == {"reversal", "control", "random", "shuffled"}


def test_user_model_without_reversal_raises_with_the_verdict():
    with pytest.raises(AssertionError, match="label removed: fail"):
        assert_label_removed(lambda s: _embed(s, False), seeds=range(9))


def test_bad_embed_output_is_refused():
    with pytest.raises(ValueError, match=r"must return \(latents, labels\)"):
        assert_label_removed(lambda s: np.zeros((10, 2)), seeds=range(9))
