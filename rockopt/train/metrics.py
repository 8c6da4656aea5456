"""Macro-F1 from a confusion matrix, computed with bincount on whatever device the logits are on."""

from __future__ import annotations

import numpy as np
import torch


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C x C counts, rows = true class, columns = predicted class."""
    flat = target.long() * num_classes + pred.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def f1_per_class(cm: np.ndarray | torch.Tensor) -> np.ndarray:
    """F1 of every class; 0 where a class is neither present nor predicted (scikit-learn's zero_division=0)."""
    cm = np.asarray(cm.cpu() if isinstance(cm, torch.Tensor) else cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)  # = 2tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(cm: np.ndarray | torch.Tensor) -> float:
    return float(f1_per_class(cm).mean())
