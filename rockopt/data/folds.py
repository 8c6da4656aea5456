"""Stratified, seeded folds written once to a CSV (path,label,fold) and reused.

Every trial, `cv` run and blend member reads the same file, so OOF logits line up. The first
line records the data fingerprint, K and the seed; a later run on changed data is refused
rather than silently mixed with folds drawn for other files.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from rockopt.data.layout import TrainSet
from rockopt.errors import DataError

_HEADER = "# rockopt folds"


@dataclass(frozen=True)
class Folds:
    """Fold number of every sample of a TrainSet, in the TrainSet's order."""

    fold: np.ndarray  # int64, one per sample
    k: int
    seed: int
    path: Path

    @property
    def fingerprint(self) -> str:
        """Identifies the fold assignment itself (blend members must share it)."""
        return hashlib.sha1(self.path.read_bytes()).hexdigest()[:16]

    def split(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and validation samples of fold k."""
        if not 0 <= k < self.k:
            raise DataError(f"fold {k} is out of range: {self.path} has folds 0..{self.k - 1}")
        return np.flatnonzero(self.fold != k), np.flatnonzero(self.fold == k)


def assign_folds(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Stratified fold number per sample (scikit-learn's StratifiedKFold, shuffled, seeded)."""
    counts = np.bincount(labels)
    if counts[counts > 0].min() < k:
        raise DataError(
            f"cannot make {k} stratified folds: the smallest class has {counts[counts > 0].min()} images"
        )
    fold = np.empty(len(labels), dtype=np.int64)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, val) in enumerate(skf.split(np.zeros(len(labels)), labels)):
        fold[val] = f
    return fold


def default_folds_path(out_dir: str | Path, data: TrainSet, k: int, seed: int) -> Path:
    return Path(out_dir) / "folds" / f"{data.root.resolve().name}-k{k}-s{seed}.csv"


def load_or_create_folds(data: TrainSet, path: str | Path, k: int, seed: int) -> Folds:
    """Read the folds file at PATH, or write it there first. Refuses a file made for other data."""
    path = Path(path)
    if path.is_file():
        return _read(path, data)
    fold = assign_folds(data.labels, k, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # workers starting together each write their own
    with tmp.open("w") as f:
        f.write(f"{_HEADER} data_fingerprint={data.fingerprint} k={k} seed={seed}\n")
        pd.DataFrame(
            {"path": data.paths, "label": [data.classes[y] for y in data.labels], "fold": fold}
        ).to_csv(f, index=False)
    tmp.replace(path)  # atomic: a reader never sees half a file
    return Folds(fold, k, seed, path)


def _read(path: Path, data: TrainSet) -> Folds:
    first = path.open().readline()
    if not first.startswith(_HEADER):
        raise DataError(f"{path}: not a rockopt folds file (first line should start with '{_HEADER}')")
    meta = dict(kv.split("=", 1) for kv in first[len(_HEADER):].split())
    df = pd.read_csv(path, skiprows=1, dtype={"path": str, "label": str, "fold": np.int64})
    if meta.get("data_fingerprint") != data.fingerprint:
        ours = set(zip(data.paths, (data.classes[y] for y in data.labels)))
        theirs = set(zip(df["path"], df["label"]))
        added, removed = len(ours - theirs), len(theirs - ours)
        raise DataError(
            f"{path}: the data set changed since these folds were written "
            f"({added} new or relabelled, {removed} gone or resized); "
            "delete the file to draw new folds, or point folds_file elsewhere"
        )
    if df["path"].tolist() == list(data.paths):  # the order the file was written in: no lookups
        fold = df["fold"].to_numpy(dtype=np.int64)
    else:
        by_path = dict(zip(df["path"], df["fold"]))
        fold = np.asarray([by_path[p] for p in data.paths], dtype=np.int64)
    return Folds(fold, int(meta["k"]), int(meta["seed"]), path)
