"""Running a model over a data set's images for logits: device, loader workers, the image
source, normalisation on the device, and the mean over test-time augmentation views. One
path for the training loop's validation, `predict` and `cv`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from rockopt.data.dataset import ImageDataset, seed_worker
from rockopt.data.transforms import tta_views
from rockopt.errors import ConfigError, RockoptError
from rockopt.train.confusion import confusion_matrix
from rockopt.train.precision import Precision


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"key 'device': not a torch device, got '{name}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"key 'device': '{name}' asked for, but no CUDA device is available")
    return device


def resolve_workers(n: int | None) -> int:
    """Loader worker processes: the setting, or one per core but the training process's (at most 16)."""
    if n is not None:
        return n
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(16, cores - 1))


def eval_loader(ds: ImageDataset, batch_size: int, workers: int, device: torch.device, persistent: bool = False) -> DataLoader:
    """Fixed-order batches of DS for evaluation and prediction (whole chunks, so a batch keeps its indices)."""
    chunks = [list(range(i, min(i + batch_size, len(ds)))) for i in range(0, len(ds), batch_size)]
    return DataLoader(
        ds,
        batch_size=None,
        sampler=chunks,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=persistent and workers > 0,
        worker_init_fn=seed_worker if workers else None,
    )


class Normalize(nn.Module):
    """uint8 NCHW (or a list of chunks) -> float on the device, normalised; channels-last on CUDA."""

    def __init__(self, mean, std, device: torch.device, channels_last: bool):
        super().__init__()
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.fmt = torch.channels_last if channels_last and device.type == "cuda" else torch.contiguous_format
        self.device = device

    def forward(self, x: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(x, list):  # worker chunks: joined on the device, not copied once more on the host
            x = torch.cat([c.to(self.device, non_blocking=True) for c in x])
        x = x.to(self.device, non_blocking=True).float()
        return ((x - self.mean) / self.std).contiguous(memory_format=self.fmt)


@dataclass
class Evaluation:
    logits: np.ndarray
    index: np.ndarray
    loss: float
    confusion: np.ndarray
    skipped: list[int]


@torch.no_grad()
def logits_by_chunk(model: nn.Module, loader, norm: Normalize, precision: Precision, tta: str = "none") -> Iterator[tuple[dict, torch.Tensor | None]]:
    """Every chunk of LOADER with its logits on the device (the mean over the TTA views; None
    when none of its images could be read)."""
    model.eval()
    views = tta_views(tta)
    for chunk in loader:
        if not len(chunk["index"]):
            yield chunk, None
            continue
        x = norm(chunk["image"])
        with precision.autocast():
            out = sum(model(v(x)).float() for v in views) / len(views)
        yield chunk, out


def evaluate(model: nn.Module, loader, norm: Normalize, precision: Precision, num_classes: int, tta: str = "none") -> Evaluation:
    """Logits of every readable sample (mean over the TTA views), loss without label smoothing."""
    logits, labels, index, skipped = [], [], [], []
    for chunk, out in logits_by_chunk(model, loader, norm, precision, tta):
        skipped += chunk["skipped"].tolist()
        if out is None:
            continue
        logits.append(out)
        labels.append(chunk["label"])
        index.append(chunk["index"])
    if not logits:
        raise RockoptError("no validation image could be read")
    out = torch.cat(logits)
    y = torch.cat(labels).to(out.device)
    loss = F.cross_entropy(out, y).item()
    cm = confusion_matrix(out.argmax(1), y, num_classes).cpu().numpy()
    return Evaluation(out.cpu().numpy().astype(np.float32), torch.cat(index).numpy(), loss, cm, skipped)
