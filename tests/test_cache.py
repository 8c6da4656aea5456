"""The image cache: the same pixels as a direct read, invalidation, resume, and its use by the loop."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from rockopt.data.cache import build_cache, cache_path, list_images, open_cache
from rockopt.data.dataset import ImageDataset
from rockopt.data.images import decode_rgb
from rockopt.data.readers import CachedReader, FileReader, open_reader
from rockopt.data.transforms import build_eval_transform, random_flips
from rockopt.errors import UnreadableImage


def _photo_set(root: Path, n: int = 10) -> Path:
    """Two classes of JPEG 'photos' larger than the cache size (both orientations), a PNG, test images."""
    rng = np.random.default_rng(0)
    for i in range(n):
        cls = "Andesite" if i % 2 else "Basalt"
        h, w = (120, 160) if i % 3 else (170, 110)
        yy, xx = np.mgrid[0:h, 0:w]
        img = np.stack([(xx * 3 + i * 20) % 256, (yy * 5) % 256, rng.integers(0, 256, (h, w))], -1).astype(np.uint8)
        d = root / "train" / cls
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:03d}.jpg", quality=90)
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(root / "train" / "Basalt" / "small.png")
    (root / "test").mkdir()
    for i in range(3):
        Image.fromarray(np.full((90, 130, 3), 40 * i, np.uint8)).save(root / "test" / f"TEST_{i:05d}.jpg")
    (root / "test.csv").write_text("ID,img_path\n" + "".join(f"TEST_{i:05d},./test/TEST_{i:05d}.jpg\n" for i in range(3)))
    return root


@pytest.fixture
def photos(tmp_path) -> Path:
    return _photo_set(tmp_path / "photos")


def _abs(root: Path) -> list[str]:
    return [str(root / r) for r in list_images(root)]


def test_cached_pixels_equal_direct_decode(photos):
    r = build_cache(photos, 64, workers=0, shard_size=4, progress=False)
    assert r.built == len(list_images(photos)) == 14 and r.reused == 0 and not r.unreadable
    cache = r.cache
    for rel in list_images(photos):
        direct = decode_rgb(photos / rel, shorter=64)
        cached = cache.image(int(cache.rows([rel])[0]))
        assert cached.dtype == np.uint8 and cached.shape == direct.shape
        assert np.array_equal(cached, direct), rel
        assert min(direct.shape[:2]) == min(64, min(decode_rgb(photos / rel).shape[:2]))  # never enlarged
    # the whole evaluation pipeline sees the same tensors through either reader
    paths = _abs(photos)
    reader = open_reader(paths, photos, mode="auto", size=64, image_size=48)
    assert isinstance(reader, CachedReader)
    a = ImageDataset(paths, None, build_eval_transform(48), reader=reader)[list(range(len(paths)))]
    b = ImageDataset(paths, None, build_eval_transform(48), reader=FileReader(paths, 64))[list(range(len(paths)))]
    assert torch.equal(a["image"], b["image"])


def test_parallel_build_matches_serial(photos, tmp_path):
    serial = build_cache(photos, 64, workers=0, shard_size=4, progress=False).cache
    parallel = build_cache(photos, 64, cache_dir=tmp_path / "other", workers=2, shard_size=4, progress=False).cache
    assert np.array_equal(serial.index, parallel.index)
    for row in range(len(serial)):
        assert np.array_equal(serial.image(row), parallel.image(row))


def test_changed_file_invalidates_the_cache(photos, caplog):
    build_cache(photos, 64, workers=0, shard_size=4, progress=False)
    paths = _abs(photos)
    changed = photos / "train" / "Basalt" / "000.jpg"
    new = np.zeros((120, 160, 3), np.uint8)
    new[:, :80] = 255
    Image.fromarray(new).save(changed, quality=90)
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime even on coarse clocks

    reader = open_reader(paths, photos, mode="auto", size=64, image_size=48)
    assert isinstance(reader, FileReader) and reader.shorter == 64  # stale: not used
    assert "stale" in caplog.text and "000.jpg" in caplog.text

    r = build_cache(photos, 64, workers=0, shard_size=4, progress=False)
    assert r.built == len(paths) and r.reused == 0  # rebuilt, not mixed
    row = int(r.cache.rows(["train/Basalt/000.jpg"])[0])
    assert np.array_equal(r.cache.image(row), decode_rgb(changed, shorter=64))
    assert isinstance(open_reader(paths, photos, mode="auto", size=64, image_size=48), CachedReader)


def test_added_file_invalidates_the_cache(photos):
    build_cache(photos, 64, workers=0, shard_size=4, progress=False)
    shutil.copy(photos / "train" / "Basalt" / "000.jpg", photos / "train" / "Basalt" / "new.jpg")
    paths = _abs(photos)
    assert isinstance(open_reader(paths, photos, mode="auto", size=64, image_size=48), FileReader)
    assert isinstance(open_reader(paths, photos, mode="build", size=64, image_size=48, progress=False), CachedReader)


def test_interrupted_build_resumes(photos):
    done: list[int] = []

    def stop_after_two(k: int) -> None:
        done.append(k)
        if len(done) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cache(photos, 64, workers=0, shard_size=4, progress=False, on_shard=stop_after_two)
    path = cache_path(photos, 64)
    assert open_cache(photos, 64) is None  # incomplete: never used
    (path / "shard-00002.u8.tmp").write_bytes(b"half a shard")  # as a kill mid-write leaves it

    again: list[int] = []
    r = build_cache(photos, 64, workers=0, shard_size=4, progress=False, on_shard=again.append)
    assert sorted(again) == [2, 3]  # only the unfinished shards were decoded
    assert r.reused == 8 and r.built == 6
    assert not list(path.glob("*.tmp"))
    for rel in list_images(photos):
        assert np.array_equal(r.cache.image(int(r.cache.rows([rel])[0])), decode_rgb(photos / rel, shorter=64))


def test_unreadable_image_is_recorded_and_skipped(photos):
    bad = photos / "train" / "Andesite" / "001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated
    r = build_cache(photos, 64, workers=0, progress=False)
    assert r.unreadable == ["train/Andesite/001.jpg"]
    paths = _abs(photos)
    ds = ImageDataset(paths, None, build_eval_transform(32), reader=open_reader(paths, photos, size=64, image_size=32))
    with pytest.raises(UnreadableImage):
        ds.load(paths.index(str(bad)))
    chunk = ds[list(range(len(paths)))]
    assert chunk["skipped"].tolist() == [paths.index(str(bad))] and len(chunk["index"]) == len(paths) - 1


def test_auto_picks_the_smallest_cache_large_enough(photos):
    paths = _abs(photos)
    assert isinstance(open_reader(paths, photos, image_size=48), FileReader)  # no cache yet: the files
    build_cache(photos, 40, workers=0, progress=False)
    build_cache(photos, 96, workers=0, progress=False)
    build_cache(photos, 64, workers=0, progress=False)
    assert open_reader(paths, photos, image_size=48).cache.size == 64
    assert open_reader(paths, photos, image_size=96).cache.size == 96
    assert isinstance(open_reader(paths, photos, image_size=128), FileReader)
    assert isinstance(open_reader(paths, photos, mode="off", size=64, image_size=48), FileReader)


def test_random_flips_flip_each_image_on_its_own():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5).repeat(32, 1, 1, 1)
    y = random_flips(x, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, y):
        views = {"id": a, "h": a.flip(-1), "v": a.flip(-2), "hv": a.flip(-2, -1)}
        match = [k for k, v in views.items() if torch.equal(v, b)]
        assert len(match) == 1
        seen.add(match[0])
    assert seen == {"id", "h", "v", "hv"}


def test_cli_cache_then_train_reads_it(photos, run_cli, workdir):
    from tests.conftest import TINY

    code, out, _ = run_cli("data", "cache", "--data", photos, "--size", "56", "-q")
    assert code == 0 and "14 images at 56 px" in out
    code, out, _ = run_cli("data", "cache", "--data", photos, "--size", "56", "-q")
    assert code == 0 and "already complete" in out
    sets = [f"{k}={v}" for k, v in {**TINY, "folds": 2, "batch_size": 4}.items()]
    code, out, err = run_cli("train", "--data", photos, "-q", "--set", *sets)
    assert code == 0, err
    assert "images from image cache" in out and "(56 px)" in out  # found on its own: no setting named it
    code, out, err = run_cli("train", "--data", photos, "-q", "--set", *sets, "cache=off")
    assert code == 0 and "images from image files" in out
    code, out, err = run_cli("train", "--data", photos, "-q", "--set", *sets, "cache=build", "cache_size=40")
    assert code == 0 and "(40 px)" in out and open_cache(photos, 40) is not None
    code, _, err = run_cli("data", "cache", "--data", workdir / "nowhere", "--size", "56")
    assert code == 2 and "nowhere" in err and "Traceback" not in err
