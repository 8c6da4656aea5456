"""`rockopt doctor`: trials and MLflow runs left RUNNING by a crashed or killed worker, and their repair.

A trial is stuck when its worker is gone: a process on this host that no longer exists, or,
on a database storage, a worker whose heartbeat stopped for longer than the grace period.
Repair marks it FAIL and re-queues its parameters once (Optuna's RetryHeartbeatStaleTrialCallback,
the same as a heartbeat failure). An MLflow run is stuck when it is RUNNING but its trial is
not, or its worker is gone; repair ends it KILLED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rockopt.search.storage import retry_failed
from rockopt.search.study import load_existing
from rockopt.tracking import WORKER_TAG, client, end_left_running, process_gone


@dataclass
class Diagnosis:
    study: optuna.Study
    stuck_trials: list[tuple[int, str]] = field(default_factory=list)  # (trial number, why)
    stuck_runs: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, run name, why)


def _heartbeat_stale(study: optuna.Study) -> set[int]:
    storage = study._storage
    if not (isinstance(storage, optuna.storages.BaseStorage) and getattr(storage, "is_heartbeat_enabled", lambda: False)()):
        return set()
    # Optuna fails these itself (fail_stale_trials) but offers no public way to list them first
    ids = set(storage._get_stale_trial_ids(study._study_id))
    return {t.number for t in study.get_trials(deepcopy=False) if t._trial_id in ids}


def diagnose(study: optuna.Study, local_only: bool = False) -> Diagnosis:
    """What is stuck. `local_only`: only what workers of this host that are gone left behind,
    which is safe to repair while other searches run (a live worker may be between telling
    Optuna its trial's end and ending the trial's run)."""
    d = Diagnosis(study)
    stale = set() if local_only else _heartbeat_stale(study)
    running = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for n, t in running.items():
        worker = t.user_attrs.get("worker", "")
        if process_gone(worker):
            d.stuck_trials.append((n, f"worker {worker} is gone"))
        elif n in stale:
            d.stuck_trials.append((n, f"no heartbeat from {worker or 'its worker'} within the grace period"))
    stuck = {n for n, _ in d.stuck_trials}
    mlflow = client()
    exp = mlflow.get_experiment_by_name(study.study_name)
    if exp is None:
        return d
    for run in mlflow.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        worker = tags.get(WORKER_TAG, "")
        if process_gone(worker):
            d.stuck_runs.append((run.info.run_id, run.info.run_name, f"worker {worker} is gone"))
        elif local_only:
            continue
        elif "trial_number" in tags:
            n = int(tags["trial_number"])
            if n not in running:
                d.stuck_runs.append((run.info.run_id, run.info.run_name, f"trial {n} is no longer running"))
            elif n in stuck:
                d.stuck_runs.append((run.info.run_id, run.info.run_name, f"trial {n} is stuck"))
    return d


def repair(d: Diagnosis) -> None:
    """Fail stuck trials (re-queued once with their parameters) and end stuck runs KILLED; a
    trial's run then says its trial's state (`trial_state`) and why (`rockopt.error`)."""
    fail_and_queue_again(d.study, [n for n, _ in d.stuck_trials], reason="its worker died")
    mlflow = client()
    states = {t.number: t.state.name for t in d.study.get_trials(deepcopy=False)}
    for run_id, _, why in d.stuck_runs:
        tags = mlflow.get_run(run_id).data.tags
        mlflow.set_tag(run_id, "rockopt.repaired", f"doctor: {why}")
        state = states.get(int(tags["trial_number"]), "FAIL") if "trial_number" in tags else None
        end_left_running(mlflow, run_id, tags, state, f"ended by repair: {why}")


def examine(ref: str | Path, storage: str | None = None, study_name: str | None = None, *, fix: bool = False) -> Diagnosis:
    """`rockopt doctor`: what is stuck in an existing study; repaired when FIX."""
    d = diagnose(load_existing(ref, storage, study_name)[0])
    if fix:
        repair(d)
    return d


def repair_gone_local_workers(study: optuna.Study) -> Diagnosis:
    """At the start of a search: what workers of this host that died left RUNNING (trials,
    failed and re-queued; their MLflow runs, ended) is repaired.

    A database storage's heartbeat fails the trials of every host; a journal file has none.
    """
    d = diagnose(study, local_only=True)
    repair(d)
    return d


def fail_and_queue_again(study: optuna.Study, numbers: list[int], reason: str) -> None:
    """Mark the RUNNING trials FAIL, saying why, and queue each one's parameters again, once for
    a trial and its retries. A trial that is no longer RUNNING is left alone: another process
    (two searches starting together find the same dead worker's trial) failed and queued it."""
    if not numbers:
        return
    retry = retry_failed(max_retry=1)
    trials = study.get_trials(deepcopy=False)  # read once: each `study.trials` reads them all
    for n in numbers:
        trial = trials[n]
        try:
            if trial.state != TrialState.RUNNING:
                continue
            optuna.Trial(study, trial._trial_id).set_user_attr("error", reason)
            study.tell(n, state=TrialState.FAIL)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):  # "cannot tell a FAIL trial"
            continue
        retry(study, trial)  # what it queues (parameters, request attributes) the tell did not change
