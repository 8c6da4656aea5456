"""What a training run leaves to continue from or predict with: `best.pt` and `last.pt`,
written whole or not at all, read back with a one-line error naming the file."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from rockopt.config import RUNTIME_KEYS, TrainConfig
from rockopt.data.split import Split
from rockopt.errors import ConfigError, RockoptError

LAST = "last.pt"  # the state at the end of the latest epoch, to continue from


def save(path: Path, state: dict) -> None:
    """Written whole or not at all: a crash while saving leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: str | Path) -> dict:
    # our own checkpoints hold numpy arrays (sampler state): not loadable with weights_only
    return torch.load(path, map_location="cpu", weights_only=False)


def load_state(path: str | Path) -> dict:
    """A run's `last.pt`, or a one-line error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no saved state to continue from (the run never finished an epoch)")
    try:
        state = load_checkpoint(path)
    except Exception as e:
        raise RockoptError(f"{path}: not readable as a saved training state ({type(e).__name__})") from None
    if not isinstance(state, dict) or "loop" not in state:
        raise ConfigError(f"{path}: not a last.pt training state")
    return state


def check_resumable(state: dict, cfg: TrainConfig, split: Split) -> None:
    """The state continues this run only with the settings that decide what it learns, on the same data and fold."""
    saved, now = state["config"], cfg.flat()
    changed = sorted(k for k, v in now.items() if k not in RUNTIME_KEYS and k in saved and saved[k] != v)
    if changed:
        what = ", ".join(f"{k}: {saved[k]!r} -> {now[k]!r}" for k in changed)
        raise ConfigError(f"cannot continue the saved run with other settings ({what}); only runtime settings may change")
    if (state["data_fingerprint"], state["folds_fingerprint"], state["fold"]) != (split.data_fingerprint, split.folds_fingerprint, split.fold):
        raise ConfigError("cannot continue the saved run: its data set, folds file or fold differ from this one's")


def rng_state(flip_gen: torch.Generator | None) -> dict:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "flips": flip_gen.get_state() if flip_gen is not None else None,
    }


def set_rng_state(state: dict, flip_gen: torch.Generator | None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if flip_gen is not None and state["flips"] is not None:
        flip_gen.set_state(state["flips"])
