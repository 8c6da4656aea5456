"""The fast file listing (os.scandir) finds, orders and fingerprints files as the pathlib one did."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rockopt.data.cache import list_images, stat_images
from rockopt.data.check import _decode_error
from rockopt.data.images import decode_rgb
from rockopt.data.layout import IMAGE_SUFFIXES, resolve_test_path, scan_train
from rockopt.errors import UnreadableImage


def _jpeg(img: Image.Image | None = None, **kw) -> bytes:
    img = img or Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


@pytest.fixture
def tricky(tmp_path) -> Path:
    """Nested, hidden, upper-case, symlinked and look-alike entries; names whose string order
    differs from pathlib's part-by-part order ('a/z' < 'a b/q' < 'a-b/z' < 'a.b/q')."""
    root = tmp_path / "data"
    jpg = _jpeg()
    for rel in ("train/A/x.jpg", "train/A/X.JPG", "train/A/.h.jpg", "train/A/.hd/y.jpg", "train/A/a/z.jpg",
                "train/A/a-b/z.jpg", "train/A/a.b/q.png", "train/A/a b/q.png", "train/A/readme.txt",
                "train/A/noext", "train/A/e.", "train/B/k.jpeg", "train/B/sub/deep/m.webp", "train/top.jpg",
                "train/.hidden/h.jpg", "test/T1.jpg", "test/sub/T2.png", "test/.T3.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(jpg + rel.encode())
    (root / "train/A/dir.jpg").mkdir()
    os.symlink(root / "train/A/x.jpg", root / "train/B/link.jpg")  # a symlinked file counts
    os.symlink(root / "train/A/a", root / "train/B/linkdir")  # a symlinked folder is not entered
    os.symlink(root / "missing.jpg", root / "train/B/broken.jpg")
    os.symlink(root / "train/B", root / "train/C")  # a symlinked class folder is a class
    return root


def _is_image(p: Path) -> bool:  # the pathlib listing scan_train and list_images used before
    return p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")


def test_scan_train_lists_and_orders_files_as_pathlib_rglob_does(tricky, monkeypatch):
    monkeypatch.chdir(tricky.parent)
    for root in (tricky, Path("data"), Path("data/"), Path("./data/../data")):
        ts = scan_train(root)
        ref = [
            p.relative_to(root).as_posix()
            for d in sorted(d for d in (root / "train").iterdir() if d.is_dir() and not d.name.startswith("."))
            for p in sorted(p for p in d.rglob("*") if _is_image(p))
        ]
        assert list(ts.paths) == ref
        assert ts.paths[:3] == ("train/A/.hd/y.jpg", "train/A/X.JPG", "train/A/a/z.jpg")
        assert ts.classes == ("A", "B", "C")
        assert list(ts.sizes) == [(root / p).stat().st_size for p in ts.paths]
        assert ts.abs_paths() == [str(root / p) for p in ts.paths]
        lines = "".join(f"{p}\t{ts.classes[y]}\t{s}\n" for p, y, s in zip(ts.paths, ts.labels, ts.sizes))
        assert ts.fingerprint == hashlib.sha1(lines.encode()).hexdigest()[:16]
    monkeypatch.chdir(tricky)
    assert scan_train(".").abs_paths()[0] == "train/A/.hd/y.jpg"  # as str(Path('.') / p)


def test_list_images_and_stats_match_the_pathlib_listing(tricky):
    ref = sorted(p.relative_to(tricky).as_posix() for p in (tricky / "train").rglob("*") if _is_image(p))
    ref += sorted(p.relative_to(tricky).as_posix() for p in (tricky / "test").rglob("*") if _is_image(p))
    rels = list_images(tricky)
    assert rels == ref and "test/sub/T2.png" in rels and "train/top.jpg" in rels
    assert stat_images(tricky, rels + ["train/none.jpg"])[-1] == [-1, -1]
    assert stat_images(tricky, rels)[0][0] == (tricky / rels[0]).stat().st_size


def test_resolve_test_path_matches_pathlib_joining():
    for root in (Path("."), Path("/data/x"), Path("data/"), Path("/")):
        for p in ("./test/T.jpg", "test//T.jpg", "../up/T.jpg", "/abs/T.jpg", "test/./T.jpg"):
            ref = Path(p) if Path(p).is_absolute() else Path(os.path.normpath(root / p))
            assert str(resolve_test_path(root, p)) == str(ref)


def _rgb() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_the_checks_decoding_fails_exactly_where_decode_rgb_does():
    jpg, exif = _jpeg(_rgb()), Image.Exif()
    exif[0x0112] = 6  # rotated
    corrupt = bytearray(jpg)
    corrupt[len(jpg) // 2 : len(jpg) // 2 + 20] = b"\xff" * 20
    cases = {
        "jpeg": jpg,
        "truncated": jpg[: len(jpg) // 2],
        "corrupt": bytes(corrupt),
        "not an image": b"not an image",
        "empty": b"",
        "rotated": _jpeg(_rgb(), exif=exif.tobytes()),
        "grey jpeg": _jpeg(_rgb().convert("L")),
        "cmyk jpeg": _jpeg(_rgb().convert("CMYK")),
        "palette png": _png(_rgb().convert("P")),
        "rgba png": _png(_rgb().convert("RGBA")),
        "truncated png": _png(_rgb().convert("RGBA"))[:200],
    }
    for what, data in cases.items():
        try:
            decode_rgb(data, name="f")
            expected = None
        except UnreadableImage as e:
            expected = e.reason
        assert _decode_error(data) == expected, what
    assert _decode_error(cases["truncated"]).startswith("image file is truncated")
