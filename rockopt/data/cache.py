"""The image cache: every image decoded once, shorter side resized to S, memory-mapped.

A study sends the same images through dozens of trials, and decoding a 1.5 MP JPEG costs
far more than augmenting a 256 px array; decoding once pays many times over. The images
have different shapes, so no array library's format fits as is: pixels go back to back in
raw uint8 shards that numpy memory-maps, with an index of (offset, height, width).

One cache per data set and S, under CACHE_DIR/<data name>-<hash of its path>/s<S>/:

    plan.json         what the cache holds: every image's relative path, bytes and mtime, S
    shard-00000.u8    the pixels of up to `shard_size` images
    shard-00000.npy   their (offset, height, width); written last: its presence marks the shard done
    index.npy         all shards' rows in plan order, written once every shard is done

An interrupted build keeps its finished shards and resumes; a cache whose plan no longer
matches the files (added, removed, changed size or mtime) is stale: it is not used, and the
next build replaces it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sys
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from rockopt.data.images import decode_rgb
from rockopt.report import is_terminal
from rockopt.data.layout import find_images, read_test_csv
from rockopt.errors import DataError, UnreadableImage
from rockopt.outputs import ensure_dir

log = logging.getLogger(__name__)

SHARD_SIZE = 256


def default_cache_dir() -> Path:
    """ROCKOPT_CACHE_DIR, else $XDG_CACHE_HOME/rockopt, else ~/.cache/rockopt."""
    if os.environ.get("ROCKOPT_CACHE_DIR"):
        return Path(os.environ["ROCKOPT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rockopt"


def data_cache_dir(data_root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The folder holding every cache (one per S) of one data set, under CACHE_DIR (default: `default_cache_dir`)."""
    root = Path(data_root).expanduser().resolve()
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:8]
    return (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / f"{root.name}-{tag}"


def cache_path(data_root: str | Path, size: int, cache_dir: str | Path | None = None) -> Path:
    return data_cache_dir(data_root, cache_dir) / f"s{size}"


def list_images(data_root: str | Path) -> list[str]:
    """Relative paths of every training image and every test image (test.csv's, else test/'s)."""
    root = Path(data_root).expanduser()
    rels = sorted("train/" + rel for rel, _ in find_images(root / "train")) if (root / "train").is_dir() else []
    df = read_test_csv(root)
    if df is not None:
        rels += [os.path.normpath(p) for p in df["img_path"]]
    elif (root / "test").is_dir():
        rels += sorted("test/" + rel for rel, _ in find_images(root / "test"))
    return list(dict.fromkeys(rels))  # a test.csv may list an image twice


def stat_images(root: Path, rels: Sequence[str]) -> list[list[int]]:
    """(bytes, mtime in ns) per image; (-1, -1) for a missing file."""
    out = []
    base = os.fspath(root)
    for rel in rels:
        try:
            st = os.stat(os.path.join(base, rel))  # a string join: pathlib's costs more than the stat
            out.append([st.st_size, st.st_mtime_ns])
        except OSError:
            out.append([-1, -1])
    return out


class ImageCache:
    """A complete cache: `image(row)` is the decoded, resized image of the plan's row ROW."""

    def __init__(self, path: Path):
        self.path = path
        plan = json.loads((path / "plan.json").read_text())
        self.size: int = plan["size"]
        self.shard_size: int = plan["shard_size"]
        self.rels: list[str] = plan["rels"]
        self.stats = np.asarray(plan["stats"], dtype=np.int64).reshape(-1, 2)  # bytes, mtime (ns)
        self.index = np.load(path / "index.npy")  # (n, 3): offset, height, width
        self._shards: dict[int, np.memmap] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict:
        # memory maps are reopened in each loader worker, not pickled with their pages
        return {**self.__dict__, "_shards": {}}

    def __len__(self) -> int:
        return len(self.rels)

    def rows(self, rels: Sequence[str]) -> np.ndarray:
        """Row of each relative path; -1 where the cache does not hold it."""
        row = {rel: i for i, rel in enumerate(self.rels)}  # not kept: loader workers would inherit it
        return np.asarray([row.get(r, -1) for r in rels], dtype=np.int64)

    def stale(self, root: Path, rows: np.ndarray) -> list[str]:
        """Relative paths among ROWS whose file changed (bytes or mtime) since the cache was built."""
        rels = [self.rels[i] for i in rows]
        now = np.asarray(stat_images(root, rels), dtype=np.int64).reshape(-1, 2)
        return [rels[k] for k in np.flatnonzero((now != self.stats[rows]).any(axis=1))]

    def image(self, row: int) -> np.ndarray:
        offset, h, w = (int(v) for v in self.index[row])
        if h == 0:
            raise UnreadableImage(self.rels[row], "could not be decoded when the cache was built")
        shard = self._shard(row // self.shard_size)
        return np.array(shard[offset : offset + h * w * 3]).reshape(h, w, 3)

    def _shard(self, k: int) -> np.memmap:
        if self._pid != os.getpid():  # a forked worker: open its own maps
            self._shards, self._pid = {}, os.getpid()
        if k not in self._shards:
            self._shards[k] = np.memmap(self.path / f"shard-{k:05d}.u8", dtype=np.uint8, mode="r")
        return self._shards[k]


def open_cache(data_root: str | Path, size: int, cache_dir: str | Path | None = None) -> ImageCache | None:
    """The complete cache of DATA_ROOT at SIZE, or None."""
    path = cache_path(data_root, size, cache_dir)
    return ImageCache(path) if (path / "index.npy").is_file() else None


def cached_sizes(data_root: str | Path, cache_dir: str | Path | None = None) -> list[int]:
    """S of every complete cache of DATA_ROOT, smallest first."""
    d = data_cache_dir(data_root, cache_dir)
    if not d.is_dir():
        return []
    return sorted(int(p.name[1:]) for p in d.glob("s*") if p.name[1:].isdigit() and (p / "index.npy").is_file())


@dataclass
class BuildResult:
    cache: ImageCache
    built: int  # images decoded by this call (0: the cache was already complete)
    reused: int  # images of shards an earlier, interrupted build had finished
    unreadable: list[str]
    seconds: float


def build_cache(
    data_root: str | Path,
    size: int,
    *,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    shard_size: int = SHARD_SIZE,
    progress: bool = True,
    on_shard: Callable[[int], None] | None = None,
) -> BuildResult:
    """Decode every image of DATA_ROOT once at shorter side SIZE; resume an interrupted build.

    WORKERS: processes decoding in parallel (default: one per core; 0 decodes here).
    ON_SHARD: called with each finished shard's number (progress hooks, tests).
    """
    if size < 16:
        raise DataError(f"cache size must be at least 16 px, got {size}")
    t0 = time.perf_counter()
    root = Path(data_root).expanduser()
    _ensure_cache_dirs(root, cache_dir)  # before any decoding: an unwritable cache is one line
    rels = list_images(root)
    if not rels:
        raise DataError(f"{root}: no images to cache")
    path = cache_path(root, size, cache_dir)
    with _locked(path.parent / f".s{size}.lock"):
        plan = {"size": size, "shard_size": shard_size, "root": str(root.resolve()), "rels": rels, "stats": stat_images(root, rels)}
        old = _read_plan(path)
        if old is not None and {k: old.get(k) for k in ("size", "shard_size", "rels", "stats")} != {
            k: plan[k] for k in ("size", "shard_size", "rels", "stats")
        }:
            log.info("the data changed since the cache %s was built: rebuilding it", path)
            shutil.rmtree(path)
            old = None
        if old is None:
            if path.exists():  # shards without a plan cannot be trusted
                shutil.rmtree(path)
            path.mkdir(parents=True)
            _write_atomic(path / "plan.json", json.dumps(plan).encode())
        for tmp in path.glob("*.tmp"):  # pieces of shards an interrupted build left half-written
            tmp.unlink()

        n_shards = -(-len(rels) // shard_size)
        todo = [k for k in range(n_shards) if not (path / f"shard-{k:05d}.npy").is_file()]
        reused = sum(len(_shard_rels(rels, k, shard_size)) for k in range(n_shards) if k not in todo)
        base = os.fspath(root)
        jobs = [(str(path), k, [os.path.join(base, r) for r in _shard_rels(rels, k, shard_size)], size) for k in todo]
        built = sum(len(j[2]) for j in jobs)
        _run_jobs(jobs, workers, progress, on_shard, total=len(rels), done=reused)

        if not (path / "index.npy").is_file():
            index = np.concatenate([np.load(path / f"shard-{k:05d}.npy") for k in range(n_shards)])
            _write_atomic(path / "index.npy", _npy_bytes(index))
        cache = ImageCache(path)
    unreadable = [rels[i] for i in np.flatnonzero(cache.index[:, 1] == 0)]
    return BuildResult(cache, built, reused, unreadable, time.perf_counter() - t0)


def _ensure_cache_dirs(root: Path, cache_dir: str | Path | None) -> None:
    """Create CACHE_DIR and the data set's folder in it; ConfigError naming the setting when impossible."""
    what = "cache_dir" if cache_dir else "image cache directory (set cache_dir or ROCKOPT_CACHE_DIR)"
    ensure_dir(Path(cache_dir).expanduser() if cache_dir else default_cache_dir(), what)
    ensure_dir(data_cache_dir(root, cache_dir), what)


def _shard_rels(rels: list[str], k: int, shard_size: int) -> list[str]:
    return rels[k * shard_size : (k + 1) * shard_size]


def _run_jobs(jobs, workers: int | None, progress: bool, on_shard, *, total: int, done: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    columns = (TextColumn("[bold]caching images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not (progress and is_terminal(sys.stderr))) as bar:
        task = bar.add_task("", total=total, completed=done)
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                _finish(bar, task, on_shard, *_build_shard(*job))
            return
        # spawn, not fork: the parent may hold CUDA or loader state a fork would copy
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_build_shard, *job) for job in jobs]
            try:
                for f in as_completed(futures):
                    _finish(bar, task, on_shard, *f.result())
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _finish(bar, task, on_shard, k: int, n: int) -> None:
    bar.advance(task, n)
    if on_shard:
        on_shard(k)


def _build_shard(path: str, k: int, paths: list[str], size: int) -> tuple[int, int]:
    """Decode one shard's images and write its pixels, then its index (the 'done' mark)."""
    out = Path(path)
    rows = np.zeros((len(paths), 3), dtype=np.int64)
    offset = 0
    with open(out / f"shard-{k:05d}.u8.tmp", "wb") as f:
        for i, p in enumerate(paths):
            try:
                img = decode_rgb(p, shorter=size)
            except UnreadableImage as e:
                log.warning("not cached, unreadable: %s", e)
                rows[i] = (offset, 0, 0)
                continue
            f.write(np.ascontiguousarray(img).tobytes())
            rows[i] = (offset, img.shape[0], img.shape[1])
            offset += img.size
    os.replace(out / f"shard-{k:05d}.u8.tmp", out / f"shard-{k:05d}.u8")
    _write_atomic(out / f"shard-{k:05d}.npy", _npy_bytes(rows))
    return k, len(paths)


def _npy_bytes(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _read_plan(path: Path) -> dict | None:
    try:
        return json.loads((path / "plan.json").read_text())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(lock: Path):
    """One builder per cache at a time (search workers may all ask for it at once)."""
    with open(lock, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
