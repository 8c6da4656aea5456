"""`rockopt data check`: what a data set holds and what is wrong with it, before any training."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rockopt.data.images import DECODE_ERRORS, decode_failure
from rockopt.report import is_terminal
from rockopt.data.layout import IMAGE_SUFFIXES, TrainSet, read_test_csv, resolve_test_path, scan_train


@dataclass
class CheckReport:
    data: TrainSet
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    unreadable_per_class: dict[str, int] = field(default_factory=dict)  # training images only
    conflicts: list[list[str]] = field(default_factory=list)  # byte-identical files under different classes
    test_images: int = 0
    test_missing: list[str] = field(default_factory=list)  # test.csv rows whose file is missing
    test_in_train: int = 0  # test files byte-identical to a training file
    fatal: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.fatal


def _inspect(path: str) -> tuple[str, str | None]:
    """(content hash, error or None): one read of the file serves both checks."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        return "", f"cannot read: {e.strerror}"
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    return digest, _decode_error(data)  # the report puts the relative path beside the error


def _decode_error(data: bytes) -> str | None:
    """Why `decode_rgb(data)` would raise UnreadableImage, or None: the same steps, without the pixels.

    decode_rgb copies a photo's pixels three times on the way to its array (exif_transpose's
    copy, convert's copy, the array); a check that keeps no pixels skips them: the transposition
    happens in place and only a mode other than RGB is converted. On a 1.5 MP photo the copies
    (fresh buffers, so page faults too) cost 5 to 15 ms beside the decoding's 15 ms. What
    fails, and the reason given, are the same (tests/test_layout.py compares them).
    """
    from PIL import Image, ImageOps

    if not data:
        return "empty file (0 bytes)"
    try:
        with Image.open(io.BytesIO(data)) as im:
            ImageOps.exif_transpose(im, in_place=True)  # loads (decodes) the image; may raise on bad EXIF
            if im.mode != "RGB":
                im = im.convert("RGB")  # for RGB, convert is a copy and cannot fail
            if 0 in im.size:
                return "empty image"
    except DECODE_ERRORS as e:
        return decode_failure(e, data)
    return None


def _inspect_all(paths: list[str], workers: int, progress: bool, label: str) -> list[tuple[str, str | None]]:
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True, disable=not (progress and is_terminal(sys.stderr))) as bar:
        task = bar.add_task(label, total=len(paths))
        out = []
        if workers <= 1:
            for p in paths:
                out.append(_inspect(p))
                bar.advance(task)
            return out
        with ProcessPoolExecutor(workers) as pool:
            for r in pool.map(_inspect, paths, chunksize=32):
                out.append(r)
                if len(out) % 32 == 0:  # a chunk at a time: rich's advance costs ~8 us a call
                    bar.advance(task, 32)
        return out


def check_dataset(root: str | Path, *, workers: int = 1, progress: bool = True) -> CheckReport:
    """Decode every image once; raise DataError when the layout itself is wrong."""
    data = scan_train(root, allow_empty_classes=True)  # an empty class folder is a fatal problem to report (exit 1)
    report = CheckReport(data)
    results = _inspect_all(data.abs_paths(), workers, progress, "train images")

    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, (digest, err) in enumerate(results):
        if err:
            report.unreadable.append((data.paths[i], err))
            name = data.classes[data.labels[i]]
            report.unreadable_per_class[name] = report.unreadable_per_class.get(name, 0) + 1
        if digest:
            by_hash[digest].append(i)
    ok = np.fromiter((not err for _, err in results), dtype=bool, count=len(results))
    readable = np.bincount(data.labels[ok], minlength=len(data.classes))
    counts = data.counts()
    for c in np.flatnonzero(readable == 0):
        name = data.classes[c]
        why = f"has no images (empty folder train/{name})" if counts[c] == 0 else "has no readable image"
        report.fatal.append(f"class '{name}' {why}")
    for group in by_hash.values():
        if len(group) > 1 and len({int(data.labels[i]) for i in group}) > 1:
            report.conflicts.append([data.paths[i] for i in group])
    same_class = sum(len(g) - 1 for g in by_hash.values() if len(g) > 1) - sum(len(g) - 1 for g in report.conflicts)
    if same_class:
        report.notes.append(f"{same_class} duplicate file(s) within the same class")

    root = data.root
    test_df = read_test_csv(root)
    test_dir = root / "test"
    if test_df is not None:
        paths = [resolve_test_path(root, p) for p in test_df["img_path"]]
        exists = [full.is_file() for full in paths]  # one stat per file
        report.test_missing = [p for p, ok in zip(test_df["img_path"], exists) if not ok]
        present = [str(p) for p, ok in zip(paths, exists) if ok]
        report.test_images = len(present)
        test_results = _inspect_all(present, workers, progress, "test images")
        for p, (digest, err) in zip(present, test_results):
            if err:
                report.unreadable.append((Path(os.path.relpath(p, root.resolve())).as_posix(), err))
            if digest in by_hash:
                report.test_in_train += 1
        if report.test_missing:
            report.fatal.append(f"{len(report.test_missing)} test.csv row(s) name a missing file")
        _check_submission_template(root, test_df, report)
    elif test_dir.is_dir():
        report.test_images = sum(1 for p in test_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        report.notes.append("test/ has no test.csv beside it: predict needs one")
    else:
        report.notes.append("no test/ or test.csv: a training-only data set")
    if report.test_in_train:
        report.notes.append(f"{report.test_in_train} test image(s) are byte-identical to a training image")
    return report


def _check_submission_template(root: Path, test_df, report: CheckReport) -> None:
    import pandas as pd

    path = root / "sample_submission.csv"
    if not path.is_file():
        report.notes.append("no sample_submission.csv: predict will write ID and the class name columns of test.csv")
        return
    sub = pd.read_csv(path, dtype=str)
    if "ID" not in sub.columns:
        report.fatal.append(f"{path.name} has no ID column")
    elif list(sub["ID"]) != list(test_df["ID"]):
        report.fatal.append(f"{path.name} IDs do not match test.csv row for row")
