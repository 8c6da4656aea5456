"""Images of one split, served in chunks: `dataset[[i, j, ...]]` decodes and augments a list of samples.

Chunks (not single samples, not whole batches) keep worker traffic low while letting the
training stream split one batch over several workers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from rockopt.data.readers import FileReader
from rockopt.data.slots import write_chunk
from rockopt.errors import UnreadableImage

log = logging.getLogger(__name__)


class SeededChunk(list):
    """Sample indices with the seed of their augmentation. The seed follows from the run's seed,
    the epoch and the chunk's place in it, not from which worker loads it or how long that
    worker has lived: a run resumed at an epoch boundary augments exactly as it would have.
    SLOT: the shared-memory slot its images go to (`ImageSlots`), if any."""

    def __init__(self, indices, seed: int, slot: int | None = None):
        super().__init__(indices)
        self.seed = seed
        self.slot = slot


def chunk_seed(seed: int, epoch: int, n: int) -> int:
    return hash((seed, epoch, n)) % 2**32  # ints hash the same in every process


class ImageDataset(Dataset):
    """RGB uint8 images (NCHW, channels-last in memory) with their labels and sample indices."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray | None, transform, reader=None):
        """READER(i) -> HxWx3 uint8 of sample i: the files (default) or the image cache (`open_reader`)."""
        self.paths = list(paths)
        self.labels = np.full(len(self.paths), -1, dtype=np.int64) if labels is None else np.asarray(labels)
        self.transform = transform
        self.read = reader or FileReader(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        return self.transform(image=self.read(i))["image"]

    def __getitem__(self, chunk: Sequence[int]) -> dict[str, torch.Tensor]:
        return self.load_chunk(chunk)

    def load_chunk(self, chunk: Sequence[int], out: np.ndarray | None = None) -> dict:
        """The chunk's images, labels and indices, and those skipped as unreadable. OUT: a slot
        (chunk x H x W x 3 uint8) to write the images into instead; "image" is then None."""
        seed = getattr(chunk, "seed", None)
        if seed is not None and hasattr(self.transform, "set_random_seed"):
            self.transform.set_random_seed(seed)
        images, kept, skipped = [], [], []
        for i in chunk:
            try:
                images.append(self.load(int(i)))
                kept.append(int(i))
            except UnreadableImage as e:
                if e.path not in _REPORTED:  # once a process, not every epoch
                    _REPORTED.add(e.path)
                    log.warning("skipping unreadable image %s", e)
                skipped.append(int(i))
        if images and out is not None and write_chunk(out, images):
            x = None
        elif images:
            # NHWC -> NCHW view: channels-last strides for free, no copy
            x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
        else:
            x = torch.empty((0, 3, 1, 1), dtype=torch.uint8)
        # the small fields as numpy: a loader that keeps them so (the training stream's) pickles
        # them with the message, where a tensor would cost a shared-memory hand-over each
        return {
            "image": x,
            "label": self.labels[kept].astype(np.int64),
            "index": np.asarray(kept, dtype=np.int64),
            "skipped": np.asarray(skipped, dtype=np.int64),
        }


_REPORTED: set[str] = set()  # unreadable images this process has warned of


def as_is(chunk: dict) -> dict:
    """A loader's collate_fn that leaves a chunk as the dataset made it (numpy stays numpy)."""
    return chunk


def seed_worker(worker_id: int) -> None:
    """Give each loader worker its own augmentation stream, derived from the run's seed."""
    info = get_worker_info()
    seed = int(torch.initial_seed() % 2**32)
    np.random.seed(seed)
    transform = getattr(info.dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def collate_chunks(chunks: list[dict]) -> dict:
    """Join chunks into one batch; empty chunks (all images unreadable) are dropped.

    The images of several chunks stay a list of chunk tensors: the training loop joins them
    on its device, so the host does not copy a batch of pixels once more between steps.
    """
    chunks = [{**c, **{k: torch.as_tensor(c[k], dtype=torch.int64) for k in ("label", "index", "skipped")}} for c in chunks]
    full = [c for c in chunks if len(c["index"])]
    skipped = torch.cat([c["skipped"] for c in chunks]) if chunks else torch.empty(0, dtype=torch.int64)
    if not full:
        return {"image": None, "label": None, "index": torch.empty(0, dtype=torch.int64), "skipped": skipped}
    if len(full) == 1:
        out = dict(full[0])
    else:
        out = {k: torch.cat([c[k] for c in full]) for k in ("label", "index")}
        out["image"] = [c["image"] for c in full]
    out["skipped"] = skipped
    return out
