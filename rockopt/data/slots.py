"""Shared-memory slots the loader workers decode training images into.

A DataLoader worker returns each batch in a new shared-memory block whose file descriptor
the main process receives over a socket and maps: measured here at about 1 ms of the
training process's time per chunk, in series with the GPU step (benchmarks/host_step.py).
No well-kept loader reuses its buffers this way short of a loader of its own (DALI, FFCV,
with their own formats), so the training stream allocates its slots once, before the
workers start: a worker writes a chunk's images into the slot the stream named, and the
message that comes back holds the labels and indices only. On CUDA the slots are
page-locked once (`cudaHostRegister`), so the copy to the device is asynchronous without a
pinning copy per batch; a slot is handed out again only after the device has copied it.
"""

from __future__ import annotations

import logging
import weakref

import numpy as np
import torch

log = logging.getLogger(__name__)


class ImageSlots:
    """COUNT slots of CHUNK images, SIZE x SIZE x 3 uint8 each, in shared memory."""

    def __init__(self, count: int, chunk: int, size: int, *, device: torch.device | None = None):
        """DEVICE: the CUDA device the images are copied to (page-locked, guarded by events), or None."""
        self.buffer = torch.zeros((count, chunk, size, size, 3), dtype=torch.uint8).share_memory_()
        self.array = self.buffer.numpy()  # the workers' view, inherited with the dataset
        self.count = count
        self._copied: list[torch.cuda.Event | None] = [None] * count
        self.device = device if device is not None and device.type == "cuda" else None
        self.registered = self.device is not None and _register(self.buffer, self.device)
        if self.registered:
            weakref.finalize(self, _unregister, self.buffer.data_ptr())

    def view(self, slot: int, n: int) -> torch.Tensor:
        """The first N images of SLOT as uint8 NCHW (channels-last strides, no copy)."""
        return self.buffer[slot, :n].permute(0, 3, 1, 2)

    def copied(self, slots: list[int]) -> None:
        """The loop has issued the step that reads SLOTS: mark its end on the device's stream
        (the training device's, which need not be the current one: `device: cuda:1`)."""
        if self.device is not None:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
            for s in slots:
                self._copied[s] = event

    def reuse(self, slot: int) -> int:
        """SLOT, once the step that last read it has run on the device. The stream reuses a slot
        two steps after its step, so this waits only when the host runs that far ahead of the GPU."""
        event, self._copied[slot] = self._copied[slot], None
        if event is not None:
            event.synchronize()
        return slot

    def __getstate__(self) -> dict:  # the workers need the buffer only
        return {"buffer": self.buffer, "count": self.count}

    def __setstate__(self, state: dict) -> None:
        self.buffer, self.count = state["buffer"], state["count"]
        self.array = self.buffer.numpy()
        self._copied, self.device, self.registered = [None] * self.count, None, False


def _register(buffer: torch.Tensor, device: torch.device) -> bool:
    """Page-lock BUFFER for asynchronous copies; without it the copies are staged (still correct)."""
    with torch.cuda.device(device):
        err = int(torch.cuda.cudart().cudaHostRegister(buffer.data_ptr(), buffer.numel(), 0))
    if err:
        log.warning("could not page-lock the loader's image slots (cudaError %d): device copies are staged", err)
        return False
    return True


def _unregister(ptr: int) -> None:
    try:
        torch.cuda.cudart().cudaHostUnregister(ptr)
    except Exception:  # at interpreter exit the CUDA context may be gone: nothing left to unpin
        pass


def write_chunk(out: np.ndarray, images: list[np.ndarray]) -> bool:
    """Copy IMAGES into the slot OUT when every one fits its shape; False leaves OUT untouched."""
    if len(images) > len(out) or any(im.shape != out.shape[1:] or im.dtype != out.dtype for im in images):
        return False
    for j, im in enumerate(images):
        out[j] = im
    return True
