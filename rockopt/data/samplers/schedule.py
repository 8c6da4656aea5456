"""The hard-negative ratio per epoch: a few epochs on mostly balanced batches before mining hard."""

from __future__ import annotations

RATIO_SCHEDULES = ("constant", "linear", "step")


def hnm_ratio_at(epoch: int, epochs: int, schedule: str, ratio: float, start: float, warmup_epochs: int) -> float:
    """The ratio for EPOCH (1-based) of EPOCHS.

    constant: ratio throughout; linear: from start at epoch 1 to ratio at the last epoch;
    step: start while epoch <= warmup_epochs, then ratio.
    """
    if schedule == "constant":
        return ratio
    if schedule == "linear":
        if epochs <= 1:
            return ratio
        t = (epoch - 1) / (epochs - 1)
        return start + (ratio - start) * t
    if schedule == "step":
        return start if epoch <= warmup_epochs else ratio
    raise ValueError(f"unknown hnm ratio schedule '{schedule}'; choose from {list(RATIO_SCHEDULES)}")
