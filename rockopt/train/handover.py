"""Per-sample losses from the device to the sampler, without a host sync per step on CUDA.

Hard-negative mining needs every step's per-sample losses on the host before a later draw.
A plain `.cpu()` after each step stalls the host until the GPU has finished that step, and
the GPU then idles while the host updates the pool, draws, collates and issues the next
step. On CUDA the losses are instead copied asynchronously into pinned memory and handed to
the sampler one step later, after the next step has been issued: by then the copy is done
or finishing while the GPU works on. The pool thus sees a step's losses one step later than
on the CPU: `hnm_staleness` (logged) is `hnm_lookahead + 1` on CUDA, `hnm_lookahead` on the
CPU, where the copy costs nothing and the losses are handed over at once.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from rockopt.data.samplers import BatchSampler

_EMPTY = (np.empty(0, np.int64), np.empty(0, np.float32))


def delay_for(device: torch.device, sampler: BatchSampler) -> int:
    """Steps between training on a batch and handing its losses to the sampler."""
    return 1 if device.type == "cuda" and sampler.needs_losses else 0


class LossHandover:
    def __init__(self, sampler: BatchSampler, device: torch.device):
        self.sampler = sampler
        self.device = device
        self.delay = delay_for(device, sampler)
        self._pending: deque = deque()

    def push(self, indices: torch.Tensor | None, losses: torch.Tensor | None) -> None:
        """The step just issued: its sample indices (CPU) and per-sample losses (device)."""
        if indices is None or losses is None or not self.sampler.needs_losses:
            self._pending.append((None, None, None))
        elif self.device.type == "cuda":
            host = torch.empty(losses.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(losses.float(), non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            self._pending.append((indices, host, done))
        else:
            self._pending.append((indices, losses.float().cpu(), None))
        self.flush(keep=self.delay)

    def flush(self, keep: int = 0) -> None:
        """Hand over all but the KEEP most recent steps' losses, oldest first (one sampler update each)."""
        while len(self._pending) > keep:
            indices, host, done = self._pending.popleft()
            if indices is None:
                self.sampler.update(*_EMPTY)
                continue
            if done is not None:
                done.synchronize()  # the step before the one now running: normally finished already
            self.sampler.update(indices.numpy(), host.numpy())
