"""The Dacon layout: DIR/train/<Class>/*, DIR/test/*, DIR/test.csv, DIR/sample_submission.csv.

A sample's identity is its path relative to DIR (posix, e.g. `train/Basalt/TRAIN_00017.jpg`):
folds, logits and blends are aligned by it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rockopt.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


@dataclass(frozen=True)
class TrainSet:
    """The labelled images of a data set, sorted by relative path."""

    root: Path
    classes: tuple[str, ...]
    paths: tuple[str, ...]  # relative to root
    labels: np.ndarray  # int64, index into classes
    sizes: tuple[int, ...] = field(repr=False)  # bytes per file, for the fingerprint

    def __len__(self) -> int:
        return len(self.paths)

    def abs_paths(self) -> list[str]:
        return [str(self.root / p) for p in self.paths]

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    @property
    def fingerprint(self) -> str:
        """Changes when a file is added, removed, relabelled or changes size."""
        h = hashlib.sha1()
        for p, y, s in zip(self.paths, self.labels, self.sizes):
            h.update(f"{p}\t{self.classes[y]}\t{s}\n".encode())
        return h.hexdigest()[:16]


def _is_image(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def scan_train(root: str | Path, *, allow_empty_classes: bool = False) -> TrainSet:
    """Find every labelled image under ROOT/train/<Class>/. Raises DataError for a bad layout.

    ALLOW_EMPTY_CLASSES: keep a class folder without images as a class of 0 images instead of
    raising (`data check` reports it among the data set's problems).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"data directory not found: {root}")
    if not root.is_dir():
        raise DataError(f"data path is not a directory: {root}")
    train = root / "train"
    if not train.is_dir():
        raise DataError(f"{root}: no train/ directory (expected train/<Class>/<image>)")
    class_dirs = sorted(d for d in train.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{train}: no class folders (expected train/<Class>/<image>)")
    classes, paths, labels, sizes = [], [], [], []
    for d in class_dirs:
        files = sorted(p for p in d.rglob("*") if _is_image(p))
        if not files and not allow_empty_classes:
            raise DataError(f"{d}: class '{d.name}' has no images")
        y = len(classes)
        classes.append(d.name)
        for f in files:
            paths.append(f.relative_to(root).as_posix())
            labels.append(y)
            sizes.append(f.stat().st_size)
    return TrainSet(root, tuple(classes), tuple(paths), np.asarray(labels, dtype=np.int64), tuple(sizes))


def read_test_csv(root: str | Path):
    """test.csv as a DataFrame (ID, img_path), or None when the set has no test.csv."""
    import pandas as pd

    path = Path(root) / "test.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path, dtype=str)
    missing = {"ID", "img_path"} - set(df.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected ID,img_path")
    return df


def resolve_test_path(root: Path, img_path: str) -> Path:
    """test.csv paths are relative to the data directory (`./test/TEST_00000.jpg`)."""
    # normpath, not resolve: the same spelling as training paths, for the image cache's lookups
    return Path(os.path.normpath(root / img_path)) if not Path(img_path).is_absolute() else Path(img_path)
