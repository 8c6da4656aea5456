"""Where a study lives: an Optuna storage URL, embedded by default.

`--storage` or ROCKOPT_STORAGE: `sqlite:///path.db`, a journal file (`path.journal` or
`journal:///path`), `postgresql://user:pass@host/db`, `mysql+pymysql://...`.
Default: `studies/NAME.db` (SQLite) when it exists or for one worker; `studies/NAME.journal`
(Optuna's journal file, safe for several processes on one host) for several workers.

Database storages get heartbeats: a trial whose worker stopped beating for the grace period
(a crashed or killed process) is marked FAIL by the next worker to start a trial, and
re-queued once with the same parameters.
"""

from __future__ import annotations

import copy
import os
import random
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from rockopt.errors import ConfigError, first_line
from rockopt.outputs import ensure_parent
from rockopt.tracking import mask_url

STUDIES_DIR = Path("studies")
SERVER_KINDS = ("postgresql", "postgres", "mysql", "mariadb")


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in seconds; ROCKOPT_HEARTBEAT_INTERVAL / ROCKOPT_HEARTBEAT_GRACE."""
    interval = int(os.environ.get("ROCKOPT_HEARTBEAT_INTERVAL", "60"))
    grace = int(os.environ.get("ROCKOPT_HEARTBEAT_GRACE", str(3 * interval)))
    return interval, grace


# what a queued retry keeps of its failed trial's user attributes: what was asked of the trial;
# the rest (its MLflow run, worker, error, checkpoint path) says how the failed one went, and is
# read from the failed trial itself (Optuna's callback would copy all of them)
REQUEST_ATTRS = ("rockopt.baseline",)


def retry_failed(max_retry: int | None = 1) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Optuna's callback that queues a failed trial's parameters again, `max_retry` times at
    most for a trial and its retries (None: always), with only its request's user attributes."""
    with warnings.catch_warnings():  # its experimental-feature warning is not news to a user of rockopt
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def queue_again(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        request = copy.deepcopy(trial)
        request.user_attrs = {k: v for k, v in trial.user_attrs.items() if k in REQUEST_ATTRS}
        callback(study, request)

    return queue_again


def resolve_storage(url: str | None, study_name: str, workers: int = 1) -> str:
    """URL (the command's --storage, or ROCKOPT_STORAGE through it), or the study's default file."""
    if url:
        return url
    STUDIES_DIR.mkdir(exist_ok=True)
    db, journal = STUDIES_DIR / f"{study_name}.db", STUDIES_DIR / f"{study_name}.journal"
    if db.is_file() or (workers <= 1 and not journal.is_file()):
        return f"sqlite:///{db}"
    return f"journal:///{journal}"


def storage_kind(url: str) -> str:
    if url.startswith("journal:") or url.endswith(".journal"):
        return "journal"
    return url.split(":", 1)[0].split("+", 1)[0]


def journal_path(url: str) -> Path:
    for prefix in ("journal:///", "journal://", "journal:"):
        if url.startswith(prefix):
            return Path(url[len(prefix) :])
    return Path(url)


def check_server_url(url: str) -> None:
    """Refuse a database-server URL that names no database, before any connection.

    Without one, PostgreSQL connects to the user's default database (often the `postgres`
    system database) and Optuna would create its tables there.
    """
    try:
        database = make_url(url).database
    except ArgumentError:
        raise ConfigError(f"storage {mask_url(url)}: not a database URL") from None
    if not database:
        raise ConfigError(f"storage {mask_url(url)}: names no database; add it to the URL, e.g. .../rockopt")


def open_storage(url: str) -> optuna.storages.BaseStorage:
    kind = storage_kind(url)
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = ensure_parent(journal_path(url), "storage")
        return JournalStorage(JournalFileBackend(str(path)))
    if kind == "sqlite":
        ensure_parent(url.removeprefix("sqlite:///"), "storage")
    elif kind in SERVER_KINDS:
        check_server_url(url)
    interval, grace = heartbeat_settings()
    engine_kwargs = {"connect_args": {"timeout": 60}} if kind == "sqlite" else {"pool_pre_ping": True}
    for attempt in range(4):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=interval,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=retry_failed(),
                )
        except IntegrityError:
            # workers on several hosts creating the tables of an empty database at once: one wins, retry
            time.sleep(0.5 + random.random() * (attempt + 1))
        except (SQLAlchemyError, ImportError, ValueError) as e:  # driver or connection: one line, never the password
            raise ConfigError(f"cannot open storage {mask_url(url)}: {mask_url(first_line(e))}") from None
    raise ConfigError(f"cannot open storage {mask_url(url)}: its tables could not be created")


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
