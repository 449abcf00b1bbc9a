"""A contract defined by a user: a reversal of the gradient clipped to [-1, 1]."""

from __future__ import annotations

from torch import Tensor

from grl_props.contracts import Contract


def _identity(x: Tensor) -> Tensor:
    return x.clone()


def _clipped_reversal(x: Tensor, v: Tensor, alpha: float) -> Tensor:
    return v.clamp(-1.0, 1.0) * -alpha


CLIPPED_REVERSE = Contract(
    "clipped-reverse", "clipped gradient reversal layer", _identity, _clipped_reversal,
    "the identity", "-alpha·clamp(v, -1, 1)", linear_in_v=False, complex=False)
