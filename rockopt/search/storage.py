"""Where a study lives: an Optuna storage URL, embedded by default.

`--storage` or ROCKOPT_STORAGE: `sqlite:///path.db`, a journal file (`path.journal` or
`journal:///path`), `postgresql://...`, `mysql://...`. Default: `sqlite:///studies/NAME.db`.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna

from rockopt.tracking import mask_url

STUDIES_DIR = Path("studies")


def resolve_storage(url: str | None, study_name: str) -> str:
    url = url or os.environ.get("ROCKOPT_STORAGE")
    if url:
        return url
    STUDIES_DIR.mkdir(exist_ok=True)
    return f"sqlite:///{STUDIES_DIR / study_name}.db"


def storage_kind(url: str) -> str:
    if url.startswith("journal:") or url.endswith(".journal") or url.endswith(".log"):
        return "journal"
    return url.split(":", 1)[0].split("+", 1)[0]


def journal_path(url: str) -> Path:
    return Path(url.removeprefix("journal:///").removeprefix("journal://").removeprefix("journal:"))


def open_storage(url: str) -> optuna.storages.BaseStorage:
    if storage_kind(url) == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = journal_path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if storage_kind(url) == "sqlite":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url)


def exists_in(url: str, study_name: str) -> bool:
    """Whether STUDY_NAME exists in the storage, without creating an empty database file."""
    kind = storage_kind(url)
    if kind == "sqlite" and not Path(url.removeprefix("sqlite:///")).is_file():
        return False
    if kind == "journal" and not journal_path(url).is_file():
        return False
    return study_name in optuna.study.get_all_study_names(open_storage(url))


def describe_storage(url: str) -> str:
    """The URL for logs and tags: passwords masked."""
    return mask_url(url)
