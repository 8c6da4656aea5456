"""Training losses, per sample: cross-entropy, class-weighted cross-entropy, focal.

Per-sample values, not a mean: the training loop scales them for gradient accumulation and
hands them to the hard-negative sampler.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rockopt.registry import lookup

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def class_weights(train_labels: np.ndarray, num_classes: int, power: float) -> np.ndarray:
    """w_c = (N / (K x n_c)) ** power from the training split's class counts.

    power 0 gives all ones, 1 full inverse frequency. A class absent from the split counts as
    one sample: a finite weight, and it never applies to a training sample anyway.
    """
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=num_classes)
    if len(counts) > num_classes:
        raise ValueError(f"a label is >= num_classes={num_classes}")
    w = len(train_labels) / (num_classes * np.maximum(counts, 1))
    return (w**power).astype(np.float32)


def _ce(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float, class_weight: torch.Tensor | None, focal_gamma: float) -> torch.Tensor:
    return F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)


def _weighted_ce(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float, class_weight: torch.Tensor | None, focal_gamma: float) -> torch.Tensor:
    if class_weight is None:
        raise ValueError("loss 'weighted_ce' needs class_weight")
    return F.cross_entropy(logits, y, weight=class_weight, reduction="none", label_smoothing=label_smoothing)


def _focal(logits: torch.Tensor, y: torch.Tensor, label_smoothing: float, class_weight: torch.Tensor | None, focal_gamma: float) -> torch.Tensor:
    logp = F.log_softmax(logits, dim=1)
    k = logits.shape[1]
    q = F.one_hot(y, k).float() * (1.0 - label_smoothing) + label_smoothing / k
    return -(q * (1.0 - logp.exp()).pow(focal_gamma) * logp).sum(1)


# name -> (float32 logits, y, label_smoothing, class_weight, focal_gamma) -> per-sample losses
LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": _ce, "weighted_ce": _weighted_ce, "focal": _focal}


def per_sample_loss(
    kind: str,
    logits: torch.Tensor,
    y: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    class_weight: torch.Tensor | None = None,
    focal_gamma: float = 2.0,
) -> torch.Tensor:
    """Loss of each sample, shape [B], float32 whatever the logits' dtype.

    weighted_ce keeps torch's semantics with label smoothing: the smoothed part is weighted
    per class c, -(1-eps) w[y] logp[y] - eps/K sum_c w_c logp[c]. The training loop averages
    these by sample count, not by the weight sum (torch's reduction="mean"), so the weights
    scale the gradient and the learning rate sees them.

    focal: sum_c q_c (1 - p_c)^gamma (-log p_c) with the smoothed targets q; gamma 0 is ce.
    """
    return lookup(LOSSES, kind, "loss")(logits.float(), y, label_smoothing, class_weight, focal_gamma)


def make_loss(
    kind: str,
    train_labels: np.ndarray,
    num_classes: int,
    *,
    label_smoothing: float,
    class_weight_power: float,
    focal_gamma: float,
    device: torch.device,
) -> LossFn:
    """(logits, y) -> per-sample losses, the class weights put on DEVICE once, not every step."""
    lookup(LOSSES, kind, "loss")  # an unknown name fails here, not at the first step
    weight = None
    if kind == "weighted_ce":
        weight = torch.from_numpy(class_weights(train_labels, num_classes, class_weight_power)).to(device)

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return per_sample_loss(
            kind, logits, y, label_smoothing=label_smoothing, class_weight=weight, focal_gamma=focal_gamma
        )

    return loss
