from __future__ import annotations

import shutil

import numpy as np
import pytest

from rockopt.data.folds import assign_folds, load_or_create_folds
from rockopt.data.layout import scan_train
from rockopt.errors import DataError


def test_same_data_and_seed_give_identical_folds_file(demo_data, tmp_path):
    data = scan_train(demo_data)
    a = load_or_create_folds(data, tmp_path / "a.csv", 5, 7)
    b = load_or_create_folds(data, tmp_path / "b.csv", 5, 7)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert a.fingerprint == b.fingerprint
    c = load_or_create_folds(data, tmp_path / "c.csv", 5, 8)
    assert not np.array_equal(a.fold, c.fold)


def test_folds_are_stratified_and_cover_every_sample_once(demo_data):
    data = scan_train(demo_data)
    fold = assign_folds(data.labels, 3, 0)
    for c in range(len(data.classes)):
        per_fold = np.bincount(fold[data.labels == c], minlength=3)
        assert per_fold.max() - per_fold.min() <= 1


def test_existing_folds_file_is_reused_not_redrawn(demo_data, tmp_path):
    data = scan_train(demo_data)
    path = tmp_path / "f.csv"
    first = load_or_create_folds(data, path, 5, 1)
    again = load_or_create_folds(data, path, 5, 999)  # another seed: the file wins
    np.testing.assert_array_equal(first.fold, again.fold)
    tr, va = again.split(2)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(data)


def test_changed_data_set_is_refused(demo_data, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_data, root)
    path = tmp_path / "f.csv"
    load_or_create_folds(scan_train(root), path, 5, 1)
    victim = next((root / "train" / "Basalt").iterdir())
    victim.rename(root / "train" / "Granite" / victim.name)  # relabelled
    with pytest.raises(DataError, match="changed since these folds were written"):
        load_or_create_folds(scan_train(root), path, 5, 1)


def test_fold_out_of_range_names_the_range(demo_data, tmp_path):
    folds = load_or_create_folds(scan_train(demo_data), tmp_path / "f.csv", 4, 1)
    with pytest.raises(DataError, match=r"folds 0\.\.3"):
        folds.split(4)
