"""Fixtures of the statistical tests: one torch thread per test (they run under -n auto)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run under ``pytest -n auto`` next to others: one torch thread each."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
