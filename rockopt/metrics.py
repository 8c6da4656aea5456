"""Macro-F1 and softmax on numpy arrays: one definition for validation, cv and blending,
importable without torch (so `rockopt blend` starts without it)."""

from __future__ import annotations

import numpy as np


def confusion(labels: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts, rows = true class, columns = predicted class."""
    flat = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def f1_per_class(cm: np.ndarray) -> np.ndarray:
    """F1 of every class; 0 where a class is neither present nor predicted (scikit-learn's zero_division=0)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    denom = cm.sum(0) + cm.sum(1)  # = 2tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(cm: np.ndarray) -> float:
    return float(f1_per_class(cm).mean())


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, in place of LOGITS (pass a copy to keep them)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z
