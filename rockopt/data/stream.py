"""The training stream: effective batches drawn at most `lookahead` optimizer steps ahead.

A DataLoader asks its sampler for indices as far ahead as it prefetches; the seed team's
loader ran ~64 batches ahead, so hard-negative mining drew from a pool dozens of steps old.
Here the sampler draws only when the loop asks for the next effective batch (after the
previous optimizer step and its pool update), `lookahead` batches ahead of use, and the
DataLoader's prefetch window is sized to never need more than that. With `split_batches`
(hard-negative mining) each micro-batch is split into one chunk per worker so that a
shallow window still keeps every worker busy; otherwise a worker decodes a whole micro-batch
and the window is deep (`stream_plan`), one hand-over per micro-batch. Given the image
size, the workers decode into shared-memory slots allocated once (`ImageSlots`), so a
hand-over carries labels and indices only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from rockopt.data.dataset import ImageDataset, SeededChunk, as_is, chunk_seed, collate_chunks, seed_worker
from rockopt.data.samplers import BatchSampler
from rockopt.data.slots import ImageSlots


class _Feed:
    """The DataLoader's sampler: serves chunks the stream already drew, never draws itself."""

    def __init__(self) -> None:
        self.queue: deque[list[int] | None] = deque()

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            if not self.queue:
                raise RuntimeError("training stream: the loader ran ahead of the sampler (prefetch window too deep)")
            chunk = self.queue.popleft()
            if chunk is None:
                return
            yield chunk


class _IntoSlots(Dataset):
    """The dataset, writing each chunk's images into the slot the stream named for it."""

    def __init__(self, dataset: ImageDataset, slots: ImageSlots):
        self.dataset, self.slots = dataset, slots

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def transform(self):  # seed_worker seeds the augmentation through it
        return self.dataset.transform

    def __getitem__(self, chunk: SeededChunk) -> dict:
        out = self.dataset.load_chunk(chunk, self.slots.array[chunk.slot])
        if out["image"] is None and len(out["index"]):
            out["slot"] = chunk.slot
        return out


@dataclass
class Step:
    """The micro-batches of one optimizer step and the sampler version its indices were drawn at.

    A micro-batch's "image" is a uint8 NCHW tensor, or a list of them (one per worker chunk)
    that the loop joins on its device. Images in slots stay valid until the loop asks for
    the step after the next: copy them (to the device) within the step."""

    micro_batches: list[dict[str, torch.Tensor]]
    drawn_at_version: int


PREFETCH_STEPS = 4  # at least this many steps in flight in the modes that do not learn from losses


def stream_plan(needs_losses: bool, hnm_lookahead: int, workers: int) -> dict:
    """How far ahead to draw, and whether to split batches over the workers.

    Hard-negative mining must draw late (`hnm_lookahead` steps ahead), so each batch is split
    over all workers to finish in time. The other modes may draw far ahead: a whole micro-batch
    per worker, as many steps in flight as there are workers (at least 4), costs the host one
    hand-over per micro-batch and rides out a slow worker or image.
    """
    if needs_losses:
        return {"lookahead": hnm_lookahead, "split_batches": True}
    return {"lookahead": max(PREFETCH_STEPS, workers), "split_batches": False}


class TrainStream:
    """Iterate `epoch()` for the steps of one epoch; call the sampler's `update` before the next step."""

    def __init__(
        self,
        dataset: ImageDataset,
        sampler: BatchSampler,
        *,
        batch_size: int,
        accumulation_steps: int = 1,
        num_workers: int = 0,
        lookahead: int = 1,
        split_batches: bool = True,
        device: torch.device | str | None = None,
        image_size: int | None = None,
        seed: int = 0,
    ):
        """DEVICE: where the loop trains (CUDA: page-locked memory for its copies). IMAGE_SIZE: the
        side of every training image, for the shared-memory slots (None: no slots)."""
        device = torch.device(device) if device is not None else None
        pin_memory = device is not None and device.type == "cuda"
        if sampler.effective_batch != batch_size * accumulation_steps:
            raise ValueError("sampler.effective_batch must equal batch_size x accumulation_steps")
        self.sampler = sampler
        self.seed = seed
        self.batch_size = batch_size
        self.accumulation_steps = accumulation_steps
        self.lookahead = lookahead
        if lookahead == 0:
            num_workers = 0  # fully synchronous: nothing may be loaded before it is drawn
        # split: one chunk per worker, so a shallow window still keeps every worker busy;
        # whole: one chunk per micro-batch (a hand-over per chunk is the host's main cost per step)
        self.chunks_per_micro = max(1, min(num_workers, batch_size)) if split_batches else 1
        window = lookahead * accumulation_steps * self.chunks_per_micro  # chunks drawn beyond the current step
        self.num_workers = min(num_workers, window)
        self._feed = _Feed()
        self.slots = None
        if self.num_workers and image_size:
            # the chunks of the steps ahead, the current step's and the previous step's (its
            # copy to the device may still run): a slot is never written while in use
            per_step = accumulation_steps * self.chunks_per_micro
            chunk = -(-batch_size // self.chunks_per_micro)
            self.slots = ImageSlots((lookahead + 2) * per_step, chunk, image_size, device=device)
            dataset = _IntoSlots(dataset, self.slots)
            # the slots are page-locked once instead of a pinning copy per chunk (a chunk whose
            # images do not fit a slot is then copied from pageable memory: slower, still right)
            pin_memory = False
        self._slot_counter = 0  # chunks given a slot so far: the next slot is this modulo the count
        kwargs = {}
        if self.num_workers:
            kwargs = dict(
                prefetch_factor=max(1, min(4, window // self.num_workers)),
                persistent_workers=True,
                worker_init_fn=seed_worker,
            )
        self.loader = DataLoader(
            dataset,
            batch_size=None,
            sampler=self._feed,
            collate_fn=as_is,  # chunks are joined here, by collate_chunks
            num_workers=self.num_workers,
            pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(seed),
            **kwargs,
        )

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.steps_per_epoch

    def _split(self, indices: np.ndarray, epoch: int, first: int) -> list[SeededChunk]:
        """The chunks of one effective batch; FIRST: the epoch's number of the first one."""
        chunks = []
        for micro in np.array_split(indices, self.accumulation_steps):
            chunks += [c.tolist() for c in np.array_split(micro, self.chunks_per_micro)]
        return [SeededChunk(c, chunk_seed(self.seed, epoch, first + i), self._take_slot()) for i, c in enumerate(chunks)]

    def _take_slot(self) -> int | None:
        if self.slots is None:
            return None
        slot = self._slot_counter % self.slots.count
        self._slot_counter += 1
        return self.slots.reuse(slot)

    def _receive(self, it: Iterator[dict]) -> tuple[dict, list[int]]:
        """The next micro-batch from the loader, and the slots its images are in."""
        chunks, slots = [next(it) for _ in range(self.chunks_per_micro)], []
        for c in chunks:
            if "slot" in c:
                slots.append(c.pop("slot"))
                c["image"] = self.slots.view(slots[-1], len(c["index"]))
        return collate_chunks(chunks), slots

    def epoch(self, epoch: int) -> Iterator[Step]:
        s, feed, steps = self.sampler, self._feed, self.sampler.steps_per_epoch
        s.start_epoch(epoch)
        feed.queue.clear()
        first_slot = self._slot_counter
        versions: deque[int] = deque()
        drawn = 0

        def draw_next() -> None:
            nonlocal drawn
            versions.append(s.version)
            feed.queue.extend(self._split(s.draw(), epoch, drawn * self.accumulation_steps * self.chunks_per_micro))
            drawn += 1
            if drawn == steps:
                feed.queue.append(None)

        for _ in range(min(steps, 1 + self.lookahead)):
            draw_next()
        it = iter(self.loader)
        received = 0  # chunks received this epoch
        try:
            for step in range(steps):
                if step and drawn < steps:
                    draw_next()  # the loop has applied step-1's update by the time it asks for this one
                micro, slots = [], []
                for _ in range(self.accumulation_steps):
                    mb, in_slots = self._receive(it)
                    micro.append(mb)
                    slots += in_slots
                received += self.accumulation_steps * self.chunks_per_micro
                try:
                    yield Step(micro, versions.popleft())
                finally:  # the loop has issued this step's copies to the device
                    if slots:
                        self.slots.copied(slots)
        except GeneratorExit:
            # stopped early: the slots of chunks drawn but never served are free again, so the next
            # epoch does not write over the last steps served (the loader finishes the old chunks
            # before it takes new ones)
            self._slot_counter = first_slot + received
            raise
        for _ in it:  # let the loader reach the end marker so the next epoch starts clean
            pass
