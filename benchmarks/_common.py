"""Helpers the benchmarks share: synthetic photo data sets, timing, the machine's name."""

from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

CLASSES = ("Andesite", "Basalt", "Etc", "Gneiss", "Granite", "Mud_Sandstone", "Weathered_Rock")


def _photo(args: tuple[Path, int, int, int, int]) -> None:
    import cv2

    path, seed, c, w, h = args
    rng = np.random.default_rng(seed)
    # gravel-like: blotches at a few scales, a class tint, sensor noise; JPEG q90 as a camera writes
    img = np.zeros((h, w, 3), np.float32)
    for cells, amp in ((8, 60.0), (40, 35.0), (160, 20.0)):
        grid = rng.standard_normal((cells * h // w + 1, cells, 3)).astype(np.float32)
        img += amp * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    img += 110 + 12 * c + rng.normal(0, 8, (h, w, 3)).astype(np.float32)
    cv2.imwrite(str(path), np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])


def make_photo_data(root: str | Path, n: int, size: tuple[int, int] = (1440, 1080), classes: int = 7) -> Path:
    """N JPEG photos of SIZE (w, h) in the Dacon layout, written once (reused when complete)."""
    root = Path(root)
    done = root / ".complete"
    if done.is_file() and done.read_text() == f"{n} {size} {classes}":
        return root
    jobs = []
    for i in range(n):
        c = i % classes
        d = root / "train" / (CLASSES[c] if c < len(CLASSES) else f"Class{c}")
        d.mkdir(parents=True, exist_ok=True)
        jobs.append((d / f"TRAIN_{i:06d}.jpg", i, c, *size))
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_photo, jobs, chunksize=8))
    done.write_text(f"{n} {size} {classes}")
    return root


def work_dir(path: Path) -> Path:
    """PATH made and resolved; MLflow runs of the benchmark go to a SQLite store inside it."""
    path.mkdir(parents=True, exist_ok=True)
    work = path.resolve()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    return work


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cores} cores ({cpu}){gpu}, torch {torch.__version__}"


class Timer:
    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.t0
