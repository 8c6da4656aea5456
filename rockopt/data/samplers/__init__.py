"""Batch samplers (the training data's sampler modes), chosen by name: uniform, balanced, hnm.

Not to be confused with Optuna's samplers, which choose trial parameters (rockopt.search.factories)."""

from __future__ import annotations

import numpy as np

from rockopt.data.samplers._balanced import BalancedSampler
from rockopt.data.samplers._base import BatchSampler
from rockopt.data.samplers._hnm import HardNegativeSampler
from rockopt.data.samplers._uniform import UniformSampler

BATCH_SAMPLERS: dict[str, type[BatchSampler]] = {
    cls.name: cls for cls in (UniformSampler, BalancedSampler, HardNegativeSampler)
}


def create_batch_sampler(
    mode: str,
    labels: np.ndarray,
    effective_batch: int,
    seed: int = 0,
    *,
    hnm_memory: int = 1024,
    hnm_ratio: float = 0.25,
) -> BatchSampler:
    """A sampler by mode name; hnm_* settings apply to the hnm mode only."""
    if mode not in BATCH_SAMPLERS:
        raise KeyError(f"unknown sampler_mode '{mode}'; choose from {sorted(BATCH_SAMPLERS)}")
    if mode == "hnm":
        return HardNegativeSampler(labels, effective_batch, seed, memory=hnm_memory, ratio=hnm_ratio)
    return BATCH_SAMPLERS[mode](labels, effective_batch, seed)


__all__ = ["BATCH_SAMPLERS", "BatchSampler", "BalancedSampler", "HardNegativeSampler", "UniformSampler", "create_batch_sampler"]
