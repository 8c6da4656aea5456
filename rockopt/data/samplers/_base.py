"""What every sampler mode provides. The training stream calls `start_epoch` and `draw`;
the training loop calls `update` after every optimizer step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class BatchSampler(ABC):
    """Draws the sample indices of one effective batch (batch_size x accumulation_steps) at a time.

    An epoch has `len(labels) // effective_batch` draws, so it sees about as many samples as
    the data set holds, whatever the mode.
    """

    name: str = ""
    #: the training settings a mode takes beyond (labels, effective_batch, seed): config key -> keyword
    settings: ClassVar[dict[str, str]] = {}
    #: whether `update` needs per-sample losses (costs one device-to-host copy per step)
    needs_losses: bool = False
    #: the share of each batch drawn from a pool of hard samples this epoch (None: the mode keeps none)
    ratio: float | None = None

    def __init__(self, labels: np.ndarray, effective_batch: int, seed: int = 0):
        labels = np.asarray(labels, dtype=np.int64)
        if effective_batch < 1:
            raise ValueError(f"effective_batch must be >= 1, but got effective_batch={effective_batch}")
        if len(labels) < effective_batch:
            raise ValueError(
                f"the effective batch ({effective_batch}) is larger than the training split ({len(labels)} images)"
            )
        self.labels = labels
        self.effective_batch = effective_batch
        self.rng = np.random.default_rng(seed)
        #: number of updates applied so far; a draw made at version v and used at version w is w - v steps stale
        self.version = 0

    @property
    def steps_per_epoch(self) -> int:
        return len(self.labels) // self.effective_batch

    def start_epoch(self, epoch: int) -> None:
        """Called before the first draw of every epoch."""

    @abstractmethod
    def draw(self) -> np.ndarray:
        """The indices of the next effective batch (length `effective_batch`)."""

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Per-sample losses of the batch just trained on."""
        self.version += 1

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.version = state["version"]


class ClassBalancedDraws:
    """Each draw picks a class uniformly, then a sample of that class uniformly (with replacement)."""

    def __init__(self, labels: np.ndarray):
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels)
        self.classes = np.flatnonzero(counts)
        self.starts = np.concatenate([[0], np.cumsum(counts)])[self.classes]
        self.counts = counts[self.classes]
        self.order = order

    def __call__(self, rng: np.random.Generator, n: int) -> np.ndarray:
        c = rng.integers(len(self.classes), size=n)
        offset = (rng.random(n) * self.counts[c]).astype(np.int64)
        return self.order[self.starts[c] + offset]
