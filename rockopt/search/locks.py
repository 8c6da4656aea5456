"""A file lock per study, for the moments when processes starting together must not race:
creating the storage's tables and the study, and claiming an invocation number.

The lock file lies beside a SQLite or journal storage; for a database server it is a file in
the temp directory, which serialises the processes of one host (processes on several hosts
differ by host name where that matters: see `study.sampler_seed`).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from filelock import FileLock

from rockopt.search.storage import journal_path, storage_kind


def lock_path(url: str, study_name: str) -> Path:
    kind = storage_kind(url)
    if kind == "sqlite":
        path = Path(url.removeprefix("sqlite:///") + ".rockopt.lock")
    elif kind == "journal":
        path = Path(f"{journal_path(url)}.rockopt.lock")
    else:
        key = hashlib.sha1(f"{url}\n{study_name}".encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"rockopt-study-{key}.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # opening the storage will say why; the lock goes where it can
        return Path(tempfile.gettempdir()) / f"rockopt-study-{hashlib.sha1(str(path).encode()).hexdigest()[:16]}.lock"
    return path


def study_lock(url: str, study_name: str, timeout: float = 300) -> FileLock:
    return FileLock(str(lock_path(url, study_name)), timeout=timeout)
