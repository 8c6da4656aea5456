from __future__ import annotations

from typing import Any

import numpy as np

from rockopt.data.samplers._base import BatchSampler


class UniformSampler(BatchSampler):
    """Plain shuffling: a new permutation each epoch, cut into effective batches (the rest is dropped)."""

    name = "uniform"

    def __init__(self, labels: np.ndarray, effective_batch: int, seed: int = 0):
        super().__init__(labels, effective_batch, seed)
        self._perm = np.arange(len(self.labels))
        self._pos = 0

    def start_epoch(self, epoch: int) -> None:
        self._perm = self.rng.permutation(len(self.labels))
        self._pos = 0

    def draw(self) -> np.ndarray:
        if self._pos + self.effective_batch > len(self._perm):
            self.start_epoch(-1)
        out = self._perm[self._pos : self._pos + self.effective_batch]
        self._pos += self.effective_batch
        return out

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "perm": self._perm.copy(), "pos": self._pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._perm, self._pos = np.asarray(state["perm"]), int(state["pos"])
