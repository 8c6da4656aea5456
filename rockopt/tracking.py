"""Everything MLflow. Runs are addressed by id through MlflowClient, never through the
fluent API's global "active run", so nesting works across threads and processes.

Default store: `sqlite:///mlruns/mlflow.db` with artifacts under `mlruns/artifacts`
(MLflow's file store is deprecated). MLFLOW_TRACKING_URI overrides it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import rockopt
from rockopt.errors import ConfigError, first_line

DEFAULT_DIR = Path("mlruns")
_MAX_PARAM = 6000  # MLflow's limit on a param value
# Optuna trial state -> MLflow run status; a pruned trial was stopped on purpose, not broken
TRIAL_TO_RUN_STATUS = {"COMPLETE": "FINISHED", "PRUNED": "KILLED", "FAIL": "FAILED"}
# the process a RUNNING run depends on, `host:pid[:wN]`: once it is gone, the run is left over
WORKER_TAG = "rockopt.worker"


# a URL's password: `//user:secret@host` (secret up to the last @ before the host, which an
# unescaped @ in it does not end; the user may be empty), and query parameters that carry one
_USERINFO_SECRET = re.compile(r"(//[^/\s:@]*:)[^/\s]*@")
_QUERY_SECRET = re.compile(r"([?&](?:password|passwd|pwd|sslpassword|token|access_token|secret|api_key|apikey)=)[^&#\s]*", re.I)


def mask_url(text: str) -> str:
    """Every URL password in TEXT (a URL, or a message quoting one) -> `***`; the rest unchanged."""
    return _QUERY_SECRET.sub(r"\1***", _USERINFO_SECRET.sub(r"\1***@", text))


def error_text(exc: BaseException) -> str:
    """An exception as one short line, any URL password masked: safe for tags and logs."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return mask_url(f"{type(exc).__name__}: {first}"[:500])


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    DEFAULT_DIR.mkdir(exist_ok=True)
    return f"sqlite:///{DEFAULT_DIR / 'mlflow.db'}"


_READY: set[str] = set()  # SQLite stores this process has seen created


def client():
    import logging

    from mlflow.tracking import MlflowClient

    # MLflow announces its database migrations at INFO on every new store, draws a bar for each
    # artifact it reads back (log_table appends to a table it downloads) and, with a tracking
    # server, prints "View run ... at: URL" on stdout as a run ends: none of it on our output
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)

    uri = tracking_uri()
    if uri in _READY:
        return MlflowClient(uri)
    if not uri.startswith("sqlite:///"):
        _check_reachable(uri)
        _READY.add(uri)
        return MlflowClient(uri)
    # two commands starting together on a new SQLite store would both create its tables
    # ("table ... already exists"): the first to take the lock creates them, the other waits
    from filelock import FileLock

    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.rockopt.lock", timeout=300):
        c = MlflowClient(uri)
        c.search_experiments(max_results=1)  # the store (and its tables) is made on first use
    _READY.add(uri)
    return c


def _check_reachable(uri: str) -> None:
    """A store or server that does not answer is one line naming it (masked), at once: MLflow's
    HTTP client would retry for minutes, and a database driver raises a page of traceback."""
    if uri.startswith(("http://", "https://")):
        import requests

        try:
            requests.get(uri.rstrip("/") + "/health", timeout=10)
        except requests.RequestException as e:
            raise ConfigError(f"cannot reach the MLflow tracking server {mask_url(uri)}: {mask_url(first_line(e))}") from None
        return
    if "://" not in uri or uri.startswith("file:"):
        return  # a local folder: made on first write
    import sqlalchemy

    try:  # one try: MLflow's own engine retries for over a minute, a warning each time
        engine = sqlalchemy.create_engine(uri)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as e:  # the driver's own errors: any of them means the store cannot be used
        raise ConfigError(f"cannot open the MLflow store {mask_url(uri)}: {mask_url(first_line(e))}") from None


# the MLflow 3 UI opens a model-training experiment on its runs, not on its GenAI views
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def experiment_id(name: str, mlflow_client=None, description: str | None = None) -> str:
    """The id of experiment NAME, created (with artifacts under mlruns/artifacts) if missing,
    marked as a model-training experiment; `description` becomes its description."""
    from mlflow.exceptions import MlflowException

    c = mlflow_client or client()
    wanted = dict(EXPERIMENT_KIND)
    if description:
        wanted["mlflow.note.content"] = description
    exp = c.get_experiment_by_name(name)
    if exp is None:
        location = None
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            location = (DEFAULT_DIR / "artifacts").resolve().as_uri()
        try:
            return c.create_experiment(name, artifact_location=location, tags=wanted)
        except MlflowException:  # another process created it first
            exp = c.get_experiment_by_name(name)
            if exp is None:
                raise
    for key, value in wanted.items():
        if exp.tags.get(key) != value:
            c.set_experiment_tag(exp.experiment_id, key, value)
    return exp.experiment_id


def git_commit() -> str | None:
    """The commit of the rockopt source tree, when it is a git checkout."""
    src = Path(rockopt.__file__).resolve().parent.parent
    if not (src / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _param_value(v: Any) -> str:
    s = str(v)
    return s if len(s) <= _MAX_PARAM else s[: _MAX_PARAM - 3] + "..."


@dataclass(frozen=True)
class DatasetRecord:
    """Images a run trained, validated or predicted on, as one MLflow dataset input."""

    context: str  # MLflow's dataset context: training, validation or testing
    name: str  # the data set's folder name
    digest: str  # at most 36 characters (MLflow's limit)
    source: str  # the data set's folder
    rows: int
    columns: tuple[str, ...] = ("path", "label")  # every column a string


def log_datasets(run_id: str, inputs: Iterable[DatasetRecord], mlflow_client=None) -> None:
    """Record INPUTS on run RUN_ID (the runs table's Datasets column). Built from the images'
    list, not a DataFrame: MLflow's pandas dataset hashes and profiles every row (seconds at
    Dacon scale). Logging the same name and digest again adds nothing."""
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import ColSpec, Schema
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    entries = []
    for d in inputs:
        schema = Schema([ColSpec("string", c) for c in d.columns]).to_dict()
        dataset = Dataset(
            d.name, d.digest, source_type="local", source=json.dumps({"uri": d.source}),
            schema=json.dumps({"mlflow_colspec": schema}), profile=json.dumps({"num_rows": d.rows}),
        )  # fmt: skip
        entries.append(DatasetInput(dataset, tags=[InputTag(MLFLOW_DATASET_CONTEXT, d.context)]))
    (mlflow_client or client()).log_inputs(run_id, datasets=entries)


class Run:
    """One MLflow run, addressed by id. Use as a context manager: an exception ends it FAILED
    (KeyboardInterrupt: KILLED), a normal exit FINISHED, unless `end` was called first."""

    def __init__(self, experiment: str, name: str, tags: Mapping[str, str] | None = None, parent_run_id: str | None = None):
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        self.client = client()
        all_tags = {"rockopt.version": rockopt.__version__, **{k: str(v) for k, v in (tags or {}).items()}}
        commit = git_commit()
        if commit:
            all_tags["rockopt.git_commit"] = commit
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run = self.client.create_run(experiment_id(experiment, self.client), run_name=name, tags=all_tags)
        self.id: str = run.info.run_id
        self.experiment_id: str = run.info.experiment_id
        self._ended = False

    @classmethod
    def reopen(cls, run_id: str) -> Run:
        """An ended run, RUNNING again: a resumed training run goes on in the run it started in."""
        from mlflow.exceptions import MlflowException

        self = cls.__new__(cls)
        self.client = client()
        try:
            run = self.client.get_run(run_id)
        except MlflowException:
            raise ConfigError(f"MLflow run {run_id} not found in {mask_url(tracking_uri())}") from None
        self.client.update_run(run_id, status="RUNNING")
        self.id, self.experiment_id, self._ended = run_id, run.info.experiment_id, False
        return self

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, _param_value(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.id, params=items[i : i + 100])

    def log_missing_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Log the PARAMS the run lacks (a run continued has some: MLflow refuses to change one);
        returns those it has with another value."""
        logged = self.client.get_run(self.id).data.params
        self.log_params({k: v for k, v in params.items() if k not in logged})
        return {k: v for k, v in params.items() if k in logged and logged[k] != _param_value(v)}

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and np.isfinite(v)]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self.id, metrics=items[i : i + 1000])

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_table(self, data: Mapping[str, list], artifact_file: str) -> None:
        """Rows appended to a JSON table artifact (MLflow's table view compares it across runs)."""
        self.client.log_table(self.id, data=dict(data), artifact_file=artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.id, str(path), artifact_path)

    def log_artifacts(self, files: Iterable[Path], artifact_path: str | None = None) -> None:
        for f in files:
            self.log_artifact(f, artifact_path)

    def log_datasets(self, inputs: Iterable[DatasetRecord]) -> None:
        log_datasets(self.id, inputs, self.client)

    def end(self, status: str = "FINISHED") -> None:
        """End the run with an MLflow status: FINISHED, FAILED or KILLED (once; later calls do nothing)."""
        if not self._ended:
            self.client.set_terminated(self.id, status=status)
            self._ended = True

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._ended:
            return
        if exc_type is None:
            self.end("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("KILLED")
        else:
            self.set_tags({"rockopt.error": error_text(exc)})
            self.end("FAILED")


def this_process() -> str:
    """`host:pid`: this process, as WORKER_TAG names it."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_gone(worker: str) -> bool:
    """True when WORKER (`host:pid[:wN]`) ran on this host and its process no longer exists."""
    parts = worker.split(":")
    if len(parts) < 2 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def left_running(experiment: str, tags: Mapping[str, str]) -> list:
    """The RUNNING runs of EXPERIMENT that carry TAGS and whose process (WORKER_TAG) is gone:
    what a killed command left behind, oldest first."""
    mlflow = client()
    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        return []
    runs = mlflow.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
    left = [r for r in runs if all(r.data.tags.get(k) == v for k, v in tags.items()) and process_gone(r.data.tags.get(WORKER_TAG, ""))]
    return sorted(left, key=lambda r: r.info.start_time)


def end_left_running(mlflow, run_id: str, tags: dict[str, str], trial_state: str | None = None, error: str = "") -> None:
    """End KILLED a run that a dead worker left RUNNING; a trial's run says its trial's state
    (`trial_state`) and, when it failed, why (`rockopt.error`, unless the run said it already)."""
    if trial_state is not None:
        mlflow.set_tag(run_id, "trial_state", trial_state)
        if trial_state == "FAIL" and "rockopt.error" not in tags:
            mlflow.set_tag(run_id, "rockopt.error", error)
    mlflow.set_terminated(run_id, status="KILLED")


def confusion_png(cm: np.ndarray, classes: Iterable[str], path: Path, title: str = "") -> Path:
    """A confusion-matrix heat map (rows: true class), counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = list(classes)
    n = len(classes)
    side = max(4.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=90, fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    hi = cm.max() or 1
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color="white" if cm[i, j] > hi / 2 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def temp_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="rockopt-")
