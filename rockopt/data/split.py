"""One fold of a data set: the training and validation samples the loop sees."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rockopt.data.folds import Folds
from rockopt.data.layout import TrainSet


@dataclass(frozen=True)
class Split:
    classes: tuple[str, ...]
    train_paths: list[str]  # absolute, for loading
    train_labels: np.ndarray
    val_paths: list[str]
    val_labels: np.ndarray
    val_ids: list[str]  # relative to the data root: the sample identity logits are aligned by
    fold: int
    data_fingerprint: str
    folds_fingerprint: str
    data_root: str = "."  # the data set's directory, where the image cache is looked up


def make_split(data: TrainSet, folds: Folds, fold: int) -> Split:
    tr, va = folds.split(fold)
    paths = data.abs_paths()
    return Split(
        classes=data.classes,
        train_paths=[paths[i] for i in tr],
        train_labels=data.labels[tr],
        val_paths=[paths[i] for i in va],
        val_labels=data.labels[va],
        val_ids=[data.paths[i] for i in va],
        fold=fold,
        data_fingerprint=data.fingerprint,
        folds_fingerprint=folds.fingerprint,
        data_root=str(data.root),
    )


def first_unreadable_class(data: TrainSet, tries: int = 50) -> str | None:
    """The name of a class none of whose first `tries` images decode, or None.

    A cheap guard before a long run: decoding every image up front would take as long as an epoch.
    """
    from rockopt.data.images import decode_rgb
    from rockopt.errors import UnreadableImage

    paths = data.abs_paths()
    for c, name in enumerate(data.classes):
        for i in np.flatnonzero(data.labels == c)[:tries]:
            try:
                decode_rgb(paths[i])
                break
            except UnreadableImage:
                continue
        else:
            return name
    return None
