"""The hard-negative ratio per epoch: a few epochs on mostly balanced batches before mining hard."""

from __future__ import annotations

from collections.abc import Callable

from rockopt.registry import lookup


def _constant(epoch: int, epochs: int, ratio: float, start: float, warmup_epochs: int) -> float:
    return ratio


def _linear(epoch: int, epochs: int, ratio: float, start: float, warmup_epochs: int) -> float:
    if epochs <= 1:
        return ratio
    t = (epoch - 1) / (epochs - 1)
    return start + (ratio - start) * t


def _step(epoch: int, epochs: int, ratio: float, start: float, warmup_epochs: int) -> float:
    return start if epoch <= warmup_epochs else ratio


# name -> (epoch, epochs, ratio, start, warmup_epochs) -> the ratio of that epoch
RATIO_SCHEDULES: dict[str, Callable[[int, int, float, float, int], float]] = {
    "constant": _constant,
    "linear": _linear,
    "step": _step,
}


def hnm_ratio_at(epoch: int, epochs: int, schedule: str, ratio: float, start: float, warmup_epochs: int) -> float:
    """The ratio for EPOCH (1-based) of EPOCHS.

    constant: ratio throughout; linear: from start at epoch 1 to ratio at the last epoch;
    step: start while epoch <= warmup_epochs, then ratio.
    """
    return lookup(RATIO_SCHEDULES, schedule, "hnm_ratio_schedule")(epoch, epochs, ratio, start, warmup_epochs)
