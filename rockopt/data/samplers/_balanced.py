from __future__ import annotations

import numpy as np

from rockopt.data.samplers._base import BatchSampler, ClassBalancedDraws


class BalancedSampler(BatchSampler):
    """Class-balanced oversampling: every draw is equally likely to come from any class."""

    name = "balanced"

    def __init__(self, labels: np.ndarray, effective_batch: int, seed: int = 0):
        super().__init__(labels, effective_batch, seed)
        self._balanced = ClassBalancedDraws(self.labels)

    def draw(self) -> np.ndarray:
        return self._balanced(self.rng, self.effective_batch)
