"""Output locations, checked when a command starts: a path that cannot be written is one
ConfigError line, before any work is done or any result is printed."""

from __future__ import annotations

import os
from pathlib import Path

from rockopt.errors import ConfigError


def ensure_dir(path: str | Path, what: str) -> Path:
    """Create directory PATH (and its parents) if missing; return it as a Path.

    WHAT names the path for the user, e.g. "--out" or "cache_dir". A path that cannot be
    created or written (a regular file in the way, no permission, a read-only disk) raises
    ConfigError("WHAT PATH: cannot write there (reason)").
    """
    p = Path(path).expanduser()
    _make(p, path, what)
    return p


def ensure_parent(path: str | Path, what: str) -> Path:
    """Create the directory that will hold file PATH; return PATH as a Path.

    Errors as `ensure_dir`, naming PATH itself; a PATH that is a directory is refused too.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise ConfigError(f"{what} {path}: cannot write there (it is a directory)")
    _make(p.parent, path, what)
    return p


def _make(d: Path, shown: str | Path, what: str) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)  # raises FileExistsError when D is a file
    except OSError as e:
        raise ConfigError(f"{what} {shown}: cannot write there ({_reason(d, e)})") from None
    # an existing directory passes mkdir whatever its permissions
    if not os.access(d, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {shown}: cannot write there (permission denied)")


def _reason(d: Path, e: OSError) -> str:
    """Name the file in the way, which the OS's 'File exists' / 'Not a directory' leave out."""
    blocker = next((a for a in (d, *d.parents) if a.exists() and not a.is_dir()), None)
    return f"{blocker} is not a directory" if blocker else (e.strerror or type(e).__name__)
