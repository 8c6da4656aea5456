"""Where a dataset's pixels come from: the image files, or the image cache.

`open_reader` makes the choice once per run, from the settings `cache` (auto | build | off),
`cache_size` and `cache_dir`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rockopt.config import TrainConfig
from rockopt.data.cache import ImageCache, build_cache, cached_sizes, open_cache
from rockopt.data.images import decode_rgb

log = logging.getLogger(__name__)


class FileReader:
    """Decode each file on every read (resized to shorter side SHORTER when given)."""

    def __init__(self, paths: Sequence[str], shorter: int | None = None):
        self.paths = list(paths)
        self.shorter = shorter

    def __call__(self, i: int) -> np.ndarray:
        return decode_rgb(self.paths[i], shorter=self.shorter)

    def describe(self) -> str:
        return f"image files, resized to {self.shorter} px" if self.shorter else "image files"


class CachedReader:
    """Read decoded images from an image cache."""

    def __init__(self, cache: ImageCache, rows: np.ndarray):
        self.cache = cache
        self.rows = rows

    def __call__(self, i: int) -> np.ndarray:
        return self.cache.image(int(self.rows[i]))

    def describe(self) -> str:
        return f"image cache {self.cache.path} ({self.cache.size} px)"


def default_build_size(image_size: int) -> int:
    """S for a cache built on first use: the image size plus the usual 1/7 margin (224 -> 256)."""
    return round(image_size * 8 / 7)


def open_reader(
    paths: Sequence[str],
    data_root: str | Path,
    *,
    mode: str = "auto",
    size: int | None = None,
    image_size: int = 224,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> FileReader | CachedReader:
    """A reader for PATHS (files under DATA_ROOT).

    off:   decode the files (resized to SIZE when given: the same pixels a cache would hold).
    auto:  the cache at SIZE when it is complete and fresh; without SIZE, the smallest complete
           cache at least IMAGE_SIZE large; else as `off`.
    build: as auto, building the cache at SIZE (default: IMAGE_SIZE x 8/7) first when missing.
    """
    if mode == "off":
        return FileReader(paths, size)
    if mode == "build":
        size = size or default_build_size(image_size)
        cache = open_cache(data_root, size, cache_dir)
        if cache is None or _stale(cache, data_root, paths):
            cache = build_cache(data_root, size, cache_dir=cache_dir, progress=progress).cache
    elif size:
        cache = open_cache(data_root, size, cache_dir)
    else:
        fitting = [s for s in cached_sizes(data_root, cache_dir) if s >= image_size]
        cache = open_cache(data_root, fitting[0], cache_dir) if fitting else None
    if cache is None:
        return FileReader(paths, size)
    rows = cache.rows(_rels(paths, data_root))
    if (rows < 0).any():
        missing = _rels(paths, data_root)[int(np.flatnonzero(rows < 0)[0])]
        log.warning("image cache %s does not hold %s: reading the image files", cache.path, missing)
        return FileReader(paths, size)
    stale = cache.stale(Path(data_root), rows)
    if stale:
        log.warning(
            "image cache %s is stale (%d files changed, e.g. %s): reading the image files; "
            "`rockopt data cache --data %s --size %d` rebuilds it",
            cache.path, len(stale), stale[0], data_root, cache.size,
        )
        return FileReader(paths, size)
    return CachedReader(cache, rows)


def _stale(cache: ImageCache, data_root: str | Path, paths: Sequence[str]) -> bool:
    rows = cache.rows(_rels(paths, data_root))
    return bool((rows < 0).any()) or bool(cache.stale(Path(data_root), rows))


def _rels(paths: Sequence[str], data_root: str | Path) -> list[str]:
    root = os.path.abspath(data_root)
    under = root if root.endswith("/") else root + "/"
    out = []
    for p in paths:
        a = os.path.abspath(p)
        # under the root, relpath is the tail of the normalised path: a slice instead of ~35 us of relpath + Path
        out.append(a[len(under):] if a.startswith(under) else Path(os.path.relpath(a, root)).as_posix())
    return out


def image_reader(cfg: TrainConfig, paths: list[str], data_root: str, progress: bool = False):
    """The files or the image cache, as the config's `cache`, `cache_size` and `cache_dir` say."""
    return open_reader(
        paths, data_root, mode=cfg.cache, size=cfg.cache_size, image_size=cfg.image_size, cache_dir=cfg.cache_dir, progress=progress
    )
