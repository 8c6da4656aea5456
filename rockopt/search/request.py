"""What a search is asked to do, resolved once: the study file, `--set`, what can be refused
before anything is created, the study's name, its storage and who runs it. A search in one
process and the `--workers` launcher start from the same request."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockopt.config import TrainConfig
from rockopt.errors import ConfigError
from rockopt.search.storage import resolve_storage
from rockopt.search.study_file import StudySpec, base_settings, load_study_file, with_overrides
from rockopt.tracking import this_process
from rockopt.train.model import hub_weights_problem

WORKER_ENV = "ROCKOPT_WORKER"  # the launcher's number for a worker it started


@dataclass(frozen=True)
class SearchRequest:
    study: str | Path  # as the user named it: the launcher names it so to its workers
    spec: StudySpec  # the study file, as read (without --set)
    source: Path  # the study file
    overrides: dict[str, Any]  # --set
    data: str | Path | None
    n_trials: int | None  # None: the study file's budget
    timeout: float | None
    name: str  # in the storage, and the MLflow experiment
    url: str  # the storage
    label: str = ""  # the launcher's worker number; "" for a search of its own

    @property
    def trials(self) -> int | None:
        """How many trials to run now."""
        return self.n_trials if self.n_trials is not None else self.spec.budget.n_trials

    @property
    def seconds(self) -> float | None:
        """When to stop starting trials."""
        return self.timeout if self.timeout is not None else self.spec.budget.timeout

    @property
    def worker(self) -> str:
        """`host:pid`, with the launcher's worker number when there is one: who runs a trial."""
        return this_process() + (f":w{self.label}" if self.label else "")


def resolve_request(
    study: str | Path,
    *,
    data: str | Path | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    workers: int = 1,
) -> SearchRequest:
    """Read the study file and refuse a bad file or request, before anything is created.
    `workers`: how many processes share the study here (it picks the default storage)."""
    overrides = dict(overrides or {})
    spec, source = load_study_file(study)
    check_request(with_overrides(spec, overrides, source), data, n_trials, timeout)
    name = study_name or source.stem
    url = resolve_storage(storage, name, workers)
    return SearchRequest(study, spec, source, overrides, data, n_trials, timeout, name, url, os.environ.get(WORKER_ENV, ""))


def check_request(spec: StudySpec, data: str | Path | None, n_trials: int | None, timeout: float | None) -> None:
    """What can be refused before anything is created: no study, folds file or MLflow run is left behind."""
    if n_trials is not None and n_trials < 1:
        raise ConfigError(f"--n-trials must be at least 1, but got {n_trials}")
    if timeout is not None and timeout <= 0:
        raise ConfigError(f"--timeout must be positive, but got {timeout}")
    where = data if data is not None else base_settings(spec).get("data")
    if not where:
        raise ConfigError("no data set given: pass --data DIR or set data.path in the study file")
    if not Path(where).expanduser().is_dir():
        raise ConfigError(f"data directory {where} does not exist")
    _check_hub_weights(spec)


def _check_hub_weights(spec: StudySpec) -> None:
    """A study whose trials all take hub weights that cannot be had here fails now, not trial by trial."""
    base = base_settings(spec)
    if base.get("pretrained_file") and Path(base["pretrained_file"]).expanduser().exists():
        return
    if "pretrained" in spec.space or not base.get("pretrained", TrainConfig.model_fields["pretrained"].default):
        return
    space = spec.space.get("backbone")
    backbones = space.choices if space is not None else [base.get("backbone", TrainConfig.model_fields["backbone"].default)]
    problems = {str(b): problem for b in backbones if (problem := hub_weights_problem(str(b)))}
    if len(problems) == 1:
        raise ConfigError(next(iter(problems.values())))
    if problems:
        raise ConfigError(
            f"pretrained weights for {', '.join(map(repr, problems))} are not in the local caches and the hub cannot be reached; "
            "put them in the hub's cache (HF_HOME), or --set pretrained=false"
        )
