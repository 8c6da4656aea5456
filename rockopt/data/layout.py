"""The Dacon layout: DIR/train/<Class>/*, DIR/test/*, DIR/test.csv, DIR/sample_submission.csv.

A sample's identity is its path relative to DIR (posix, e.g. `train/Basalt/TRAIN_00017.jpg`):
folds, logits and blends are aligned by it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from functools import cached_property
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
        """str(root / path) of every sample (joined as strings: pathlib costs ~5 us a path, 2 s at Dacon scale)."""
        base = str(self.root)
        prefix = "" if base == "." else base.rstrip("/") + "/"  # Path('.') / 'train/x' is 'train/x'
        return [prefix + p for p in self.paths]

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.classes))

    @cached_property  # the set is frozen; runs ask for it several times (folds, tags, members)
    def fingerprint(self) -> str:
        """Changes when a file is added, removed, relabelled or changes size."""
        # one update over the joined lines: the same digest as one update per line
        lines = "".join(f"{p}\t{self.classes[y]}\t{s}\n" for p, y, s in zip(self.paths, self.labels.tolist(), self.sizes))
        return hashlib.sha1(lines.encode()).hexdigest()[:16]


def _is_image_name(name: str) -> bool:
    """An image's file name: a known suffix (as Path.suffix reads it, any case), not hidden."""
    i = name.rfind(".")
    return 0 < i < len(name) - 1 and name[i:].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def find_images(directory: str | Path) -> list[tuple[str, os.DirEntry]]:
    """(posix path relative to DIRECTORY, its DirEntry) of every image file under DIRECTORY, unsorted.

    The files `DIRECTORY.rglob("*")` yields that are files (symlinks followed), have an image
    suffix and are not hidden; like rglob, it does not enter symlinked folders and skips folders
    it may not read. os.scandir gives each entry's type with the listing, so the only system
    call per file is the caller's stat (pathlib spends ~50 us a file: 20 s on Dacon's 380k).
    """
    out: list[tuple[str, os.DirEntry]] = []
    stack = [(os.fspath(directory), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except PermissionError:
            continue
        for e in entries:
            try:
                is_dir = e.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                stack.append((e.path, f"{prefix}{e.name}/"))
            elif _is_image_name(e.name) and _is_file(e):
                out.append((prefix + e.name, e))
    return out


def _is_file(e: os.DirEntry) -> bool:
    try:
        return e.is_file()
    except OSError:
        return False


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
    if len(class_dirs) == 1:  # it would train, and score a perfect macro-F1 on nothing
        raise DataError(f"{train}: one class folder ('{class_dirs[0].name}'); a classifier needs at least two")
    classes, paths, labels, sizes = [], [], [], []
    for d in class_dirs:
        # sorted as Paths compare (part by part), so 'a/x' comes before 'a-b/x' as it always did
        files = sorted(find_images(d), key=lambda f: f[0].split("/"))
        if not files and not allow_empty_classes:
            raise DataError(f"{d}: class '{d.name}' has no images")
        y = len(classes)
        classes.append(d.name)
        prefix = f"train/{d.name}/"
        for rel, entry in files:
            paths.append(prefix + rel)
            labels.append(y)
            sizes.append(entry.stat().st_size)  # follows a symlink, as Path.stat did
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
    # strings, not pathlib, until the end: test sets have ~100k rows
    return Path(img_path) if os.path.isabs(img_path) else Path(os.path.normpath(os.path.join(root, img_path)))


def write_submission(data_root: str | Path, ids: list[str], labels: list[str], out: str | Path) -> Path:
    """Exactly the rows and column order of sample_submission.csv, with the predicted class names.

    Refuses a template whose IDs do not match test.csv row for row.
    """
    import pandas as pd

    root = Path(data_root)
    template = root / "sample_submission.csv"
    if template.is_file():
        sub = pd.read_csv(template, dtype=str)
        if "ID" not in sub.columns or len(sub.columns) < 2:
            raise DataError(f"{template}: expected columns ID and the label column")
        if list(sub["ID"]) != list(ids):
            raise DataError(f"{template}: its IDs do not match test.csv row for row; refusing to write a misaligned submission")
        sub[sub.columns[1]] = labels
    else:
        sub = pd.DataFrame({"ID": ids, "rock_type": labels})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sub.to_csv(out, index=False)
    return out
