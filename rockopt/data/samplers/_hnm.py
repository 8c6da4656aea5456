from __future__ import annotations

from typing import Any

import numpy as np

from rockopt.data.samplers._base import BatchSampler, ClassBalancedDraws


class HardNegativeSampler(BatchSampler):
    """Hard-negative mining.

    Every sample's loss from its last visit is remembered (without label smoothing). The pool
    is the `memory` samples with the highest such loss. Each effective batch takes
    `round(ratio x effective_batch)` samples from the pool, with probability proportional to
    loss and without replacement, and fills the rest class-balanced.
    """

    name = "hnm"
    needs_losses = True

    def __init__(self, labels: np.ndarray, effective_batch: int, seed: int = 0, memory: int = 1024, ratio: float = 0.25):
        super().__init__(labels, effective_batch, seed)
        if memory < 1:
            raise ValueError(f"hnm_memory must be >= 1, but got hnm_memory={memory}")
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"hnm_ratio must be in [0, 1], but got hnm_ratio={ratio}")
        self.memory = memory
        self.ratio = ratio
        self.n_hard = round(ratio * effective_batch)
        self._balanced = ClassBalancedDraws(self.labels)
        self.last_loss = np.full(len(self.labels), np.nan, dtype=np.float32)
        self._pool: np.ndarray | None = None

    def pool(self) -> np.ndarray:
        """Indices in the pool, highest loss first."""
        if self._pool is None:
            seen = np.flatnonzero(~np.isnan(self.last_loss))
            if len(seen) > self.memory:
                # top-k in O(n); only the pool itself gets sorted
                seen = seen[np.argpartition(self.last_loss[seen], -self.memory)[-self.memory :]]
            self._pool = seen[np.argsort(-self.last_loss[seen], kind="stable")]
        return self._pool

    def draw(self) -> np.ndarray:
        pool = self.pool()
        k = min(self.n_hard, len(pool))
        if k:
            w = self.last_loss[pool].astype(np.float64) + 1e-12
            hard = self.rng.choice(pool, size=k, replace=False, p=w / w.sum())
        else:
            hard = np.empty(0, dtype=np.int64)
        out = np.concatenate([hard, self._balanced(self.rng, self.effective_batch - k)])
        self.rng.shuffle(out)  # spread the hard samples over the micro-batches
        return out

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        # a sample drawn twice in one batch keeps its last loss; both values are equal anyway
        self.last_loss[np.asarray(indices, dtype=np.int64)] = np.asarray(losses, dtype=np.float32)
        self._pool = None
        super().update(indices, losses)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_loss": self.last_loss.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.last_loss = np.asarray(state["last_loss"], dtype=np.float32).copy()
        self._pool = None
