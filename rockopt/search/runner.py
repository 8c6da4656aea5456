"""`rockopt search`: create or resume a study, run trials under one MLflow parent run, summarise."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from rockopt import stopping
from rockopt.report import Reporter
from rockopt.search.doctor import repair_gone_local_workers
from rockopt.search.inputs import prepare_inputs
from rockopt.search.objective import Objective
from rockopt.search.parent_run import TrialLine, close_parent_run, open_parent_run
from rockopt.search.request import SearchRequest, resolve_request
from rockopt.search.storage import describe_storage, retry_failed
from rockopt.search.study import open_study, quiet_optuna
from rockopt.search.workers import follow_launcher


@dataclass
class SearchSummary:
    study_name: str
    storage: str  # masked
    parent_run_id: str
    counts: dict[str, int]  # over the whole study
    best_value: float | None
    best_trial: int | None
    trials_run: int  # in this invocation
    interrupted: bool
    requeued: int | None  # the interrupted trial, queued again
    notes: list[str]

    def line(self) -> str:
        """`study NAME: 3 complete, 1 pruned, 0 failed; best 0.5621 (trial 2)`."""
        c = self.counts
        text = f"study {self.study_name}: {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed"
        if self.best_trial is not None:
            text += f"; best {self.best_value:.4f} (trial {self.best_trial})"
        return text


class Notes(list[str]):
    """What a search notes before its first trial: printed as it arises, and kept for the summary."""

    def __init__(self, reporter: Reporter):
        super().__init__()
        self.reporter = reporter

    def __call__(self, text: str) -> None:
        self.append(text)
        self.reporter.line(f"note: {text}")


def run_search(
    study: str | Path,
    *,
    data: str | Path | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> SearchSummary:
    """Run `n_trials` more trials (default: the study file's budget) of STUDY; resumable.

    `progress`: bars on a terminal (lines are printed either way, timestamped when stderr is
    not a terminal). Notes are printed as they arise, before the first trial.
    """
    request = resolve_request(
        study, data=data, n_trials=n_trials, timeout=timeout, storage=storage, study_name=study_name, overrides=overrides
    )
    return run_request(request, progress=progress)


def run_request(request: SearchRequest, progress: bool = True) -> SearchSummary:
    """Run REQUEST's trials in this process: open the study, repair what dead workers of this
    host left, prepare the data, then the trials under the parent run, which ends with a summary."""
    follow_launcher()  # a worker of `--workers` stops as on SIGTERM when its launcher is gone
    reporter = Reporter(bars=progress, prefix=f"[w{request.label}] " if request.label else "")
    notes = Notes(reporter)
    quiet_optuna()
    stored = open_study(request, notes)
    _repair_gone_workers(stored.study, notes)
    inputs = prepare_inputs(stored.spec, request, notes, show_cache_build=progress and reporter.terminal)
    parent = open_parent_run(request, stored, inputs)
    study, keep = stored.study, stored.spec.budget.keep_checkpoints
    started = len(study.trials)
    with parent, stopping.remembered() as stopped:  # anything unexpected ends the parent run FAILED, never RUNNING
        objective = Objective(
            stored.spec, inputs.base, inputs.dataset, inputs.folds, study_name=request.name, experiment=request.name,
            parent_run_id=parent.id, out_dir=inputs.out, reporter=reporter, worker=request.worker, stopped=stopped,
        )  # fmt: skip
        trial_line = TrialLine(reporter, parent, keep, stopped)
        interrupted = _optimize(study, objective, trial_line, reporter, request)
        if objective.interrupted is not None:  # Optuna failed it: queued again (every time), to go on from its last epoch
            retry_failed(max_retry=None)(study, study.trials[objective.interrupted])
        counts, best = close_parent_run(parent, study, keep, trial_line.finished, interrupted, notes)
    return SearchSummary(
        study_name=request.name,
        storage=describe_storage(request.url),
        parent_run_id=parent.id,
        counts=counts,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        trials_run=len(study.trials) - started,
        interrupted=interrupted,
        requeued=objective.interrupted,
        notes=list(notes),
    )


def _repair_gone_workers(study: optuna.Study, note: Notes) -> None:
    repaired = repair_gone_local_workers(study)
    for n, _ in repaired.stuck_trials:
        note(f"trial {n} was left running by a worker of this host that is gone: marked FAIL and queued again")
    if repaired.stuck_runs:
        note(f"{len(repaired.stuck_runs)} MLflow run(s) of workers of this host that are gone ended KILLED")


def _optimize(study: optuna.Study, objective: Objective, trial_line: TrialLine, reporter: Reporter, request: SearchRequest) -> bool:
    """The trials, with the bar while they run; whether Ctrl-C or SIGTERM stopped them."""
    with reporter:
        if reporter.progress is not None:
            trial_line.task = reporter.progress.add_task("trials", total=request.trials)
        try:
            study.optimize(
                objective, n_trials=request.trials, timeout=request.seconds, catch=(Exception,), callbacks=[trial_line], gc_after_trial=True
            )
        except KeyboardInterrupt:
            return True
    return False
