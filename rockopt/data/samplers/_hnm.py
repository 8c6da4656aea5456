from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from rockopt.data.samplers._base import BatchSampler, ClassBalancedDraws
from rockopt.data.samplers._pool import HardPool
from rockopt.data.samplers.schedule import hnm_ratio_at


class HardNegativeSampler(BatchSampler):
    """Hard-negative mining.

    Every sample's loss from its last visit is remembered (without label smoothing). The pool
    is the `memory` samples with the highest such loss. Each effective batch takes
    `round(ratio x effective_batch)` samples from the pool, with probability proportional to
    loss and without replacement, and fills the rest class-balanced. The pool is kept up to
    date from each step's losses (`HardPool`): a step's cost does not grow with the data set.

    The ratio follows its schedule (`hnm_ratio_at`): each epoch's start sets that epoch's.
    """

    name = "hnm"
    settings = {
        "hnm_memory": "memory", "hnm_ratio": "ratio", "hnm_ratio_schedule": "ratio_schedule",
        "hnm_ratio_start": "ratio_start", "hnm_ratio_warmup_epochs": "ratio_warmup_epochs", "epochs": "epochs",
    }  # fmt: skip
    needs_losses = True

    def __init__(
        self,
        labels: np.ndarray,
        effective_batch: int,
        seed: int = 0,
        memory: int = 1024,
        ratio: float = 0.25,
        ratio_schedule: str = "constant",
        ratio_start: float = 0.0,
        ratio_warmup_epochs: int = 1,
        epochs: int = 1,
    ):
        super().__init__(labels, effective_batch, seed)
        if memory < 1:
            raise ValueError(f"hnm_memory must be >= 1, but got hnm_memory={memory}")
        self.memory = memory
        self._ratio_at = partial(
            hnm_ratio_at, epochs=epochs, schedule=ratio_schedule, ratio=ratio, start=ratio_start, warmup_epochs=ratio_warmup_epochs
        )
        self.set_ratio(self._ratio_at(1))
        self._balanced = ClassBalancedDraws(self.labels)
        self._pool = HardPool(len(self.labels), memory)

    def start_epoch(self, epoch: int) -> None:
        self.set_ratio(self._ratio_at(epoch))

    def set_ratio(self, ratio: float) -> None:
        """The share of each batch taken from the pool from the next draw on."""
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"hnm_ratio must be in [0, 1], but got hnm_ratio={ratio}")
        self.ratio = ratio
        self.n_hard = round(ratio * self.effective_batch)

    @property
    def last_loss(self) -> np.ndarray:
        """Every sample's loss from its last visit (NaN: not seen yet)."""
        return self._pool.last

    def pool(self) -> np.ndarray:
        """Indices in the pool, highest loss first."""
        return self._pool.members()

    def draw(self) -> np.ndarray:
        hard = self._pool.draw(self.n_hard, self.rng)
        out = np.concatenate([hard, self._balanced(self.rng, self.effective_batch - len(hard))])
        self.rng.shuffle(out)  # spread the hard samples over the micro-batches
        return out

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        # in order: a sample drawn twice in one batch keeps its last loss (both are equal anyway)
        self._pool.update(indices, losses)
        super().update(indices, losses)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "last_loss": self._pool.last.copy(), "pool_slots": self._pool.state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._pool.rebuild(state["last_loss"], state.get("pool_slots"))
