"""Batch samplers (the training data's sampler modes), chosen by name: uniform, balanced, hnm.

Not to be confused with Optuna's samplers, which choose trial parameters (rockopt.search.factories)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rockopt.data.samplers._balanced import BalancedSampler
from rockopt.data.samplers._base import BatchSampler
from rockopt.data.samplers._hnm import HardNegativeSampler
from rockopt.data.samplers._uniform import UniformSampler
from rockopt.registry import lookup

BATCH_SAMPLERS: dict[str, type[BatchSampler]] = {
    cls.name: cls for cls in (UniformSampler, BalancedSampler, HardNegativeSampler)
}


def create_batch_sampler(mode: str, labels: np.ndarray, effective_batch: int, seed: int = 0, **settings: Any) -> BatchSampler:
    """A sampler by mode name. SETTINGS: training settings by their config keys (a whole config's
    may be given); each mode takes the ones it declares in `settings`, the rest are not its concern."""
    cls = lookup(BATCH_SAMPLERS, mode, "sampler_mode")
    return cls(labels, effective_batch, seed, **{kw: settings[key] for key, kw in cls.settings.items() if key in settings})


__all__ = ["BATCH_SAMPLERS", "BatchSampler", "BalancedSampler", "HardNegativeSampler", "UniformSampler", "create_batch_sampler"]
