"""One trial: settings from the space, a tracked training run, reports to the pruner.

Trial state -> MLflow run status: COMPLETE -> FINISHED, PRUNED -> KILLED (tag
`pruned_at_epoch`), FAIL -> FAILED (tag `rockopt.error`). Ctrl-C or SIGTERM -> the trial FAILs
in Optuna, its run ends KILLED, and the search queues it again.

A trial whose worker died is failed and queued again once (the next search on this host,
heartbeat or `doctor`), an interrupted one every time; the retry goes on from the failed
trial's `last.pt`: the earlier epochs are logged to the new run and reported to the pruner
again, and the run is tagged with the trial and run it continues.
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from rockopt.config import build_config
from rockopt.errors import RockoptError
from rockopt.data.folds import Folds
from rockopt.data.layout import TrainSet
from rockopt.tracked_run import run_tags, train_in_run
from rockopt.report import Reporter, duration, params_text
from rockopt.search.space import suggest
from rockopt.search.study_file import StudySpec
from rockopt.tracking import WORKER_TAG, TRIAL_TO_RUN_STATUS, Run, client, error_text, end_left_running
from rockopt.train.checkpoints import LAST, load_state
from rockopt.train.engine import EpochResult, FitResult


def free_accelerator_memory() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def retried_from(trial: optuna.Trial) -> tuple[optuna.trial.FrozenTrial | None, dict | None]:
    """The failed trial this one retries and its saved state; None for what there is not."""
    trials = trial.study.get_trials(deepcopy=False)
    this = next(t for t in trials if t.number == trial.number)
    history = this.system_attrs.get("retry_history") or []  # Optuna's retry callbacks keep it
    if not history:
        return None, None
    failed = next(t for t in trials if t.number == history[-1])
    path = failed.user_attrs.get("checkpoint")
    last = Path(path).with_name(LAST) if path else None
    if last is None or not last.is_file():
        return failed, None
    try:
        return failed, load_state(last)
    except RockoptError:  # cut short while the worker died: start over
        return failed, None


INTERRUPTED = "interrupted"  # a trial's `error` when Ctrl-C or SIGTERM stopped it


class Objective:
    """Callable for `study.optimize`; returns the best epoch's validation metric."""

    def __init__(
        self,
        spec: StudySpec,
        base: dict[str, Any],
        data: TrainSet,
        folds: Folds,
        *,
        study_name: str,
        experiment: str,
        parent_run_id: str,
        out_dir: Path,
        reporter: Reporter | None = None,
        worker: str = "",
        stopped: Callable[[], bool] = lambda: False,
    ):
        self.spec, self.base, self.data, self.folds = spec, base, data, folds
        self.study_name, self.experiment, self.parent_run_id = study_name, experiment, parent_run_id
        self.out_dir, self.reporter = out_dir, reporter or Reporter(bars=False)
        self.worker, self.stopped = worker, stopped
        self.interrupted: int | None = None  # the trial a Ctrl-C or SIGTERM stopped

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", self.worker)  # first: `doctor` checks whether this process still lives
        params = suggest(trial, self.spec.space)
        failed, saved = retried_from(trial)
        run = self._start_run(trial, params, failed, saved)
        epochs = EpochReport(trial, self.spec, self.reporter, self.stopped)
        try:
            result, run_dir = self._train(trial, params, run, epochs, failed, saved)
        except optuna.TrialPruned:
            epochs.finish(run, "PRUNED", pruned_at_epoch=epochs.done)
            raise
        except KeyboardInterrupt:
            # Optuna marks the trial FAIL; the run was stopped, not broken, and the search queues it again
            self.interrupted = trial.number
            trial.set_user_attr("error", INTERRUPTED)
            epochs.finish(run, "FAIL", "KILLED", **{"rockopt.error": "interrupted (Ctrl-C or SIGTERM)"})
            raise
        except Exception as e:  # any failure ends this trial only; Optuna records it FAIL and goes on
            if not run_has_params(run):
                run.log_params(params)
            msg = error_text(e)
            trial.set_user_attr("error", msg)
            epochs.finish(run, "FAIL", **{"rockopt.error": msg})
            free_accelerator_memory()
            raise
        best = min(h.val_loss for h in result.history) if self.spec.objective.metric == "val_loss" else result.best_f1
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        epochs.finish(run, "COMPLETE")
        return best

    def _start_run(self, trial: optuna.Trial, params: dict[str, Any], failed: optuna.trial.FrozenTrial | None, saved: dict | None) -> Run:
        """The trial's MLflow run, under the search's parent run; a retry says what it continues."""
        tags = {
            "trial_number": str(trial.number),
            "trial_state": "RUNNING",
            "rockopt.study": self.study_name,
            **run_tags(self.data, self.folds, self.base.get("fold", 0)),
        }
        baseline = bool(trial.user_attrs.get("rockopt.baseline"))
        if baseline:
            tags["rockopt.baseline"] = "true"
        if failed is not None:
            tags["rockopt.retries_trial"] = str(failed.number)
            tags["rockopt.retries_run"] = failed.user_attrs.get("mlflow_run_id", "")
            if saved is not None:
                tags["rockopt.resumed_at_epoch"] = str(saved["epoch"])
        run = Run(self.experiment, f"trial-{trial.number}", tags={**tags, WORKER_TAG: self.worker}, parent_run_id=self.parent_run_id)
        trial.set_user_attr("mlflow_run_id", run.id)
        self.reporter.line(f"trial {trial.number} started{' (the default recipe)' if baseline else ''}: {params_text(params)}")
        if failed is not None:
            end_run_of(failed)
            why = "which was interrupted" if failed.user_attrs.get("error") == INTERRUPTED else "whose worker died"
            self.reporter.line(
                f"trial {trial.number} retries trial {failed.number}, {why}: "
                + (f"continuing after its epoch {saved['epoch']}" if saved else "from the start (it saved no epoch)")
            )
        return run

    def _train(
        self, trial: optuna.Trial, params: dict[str, Any], run: Run, epochs: EpochReport, failed: optuna.trial.FrozenTrial | None, saved: dict | None
    ) -> tuple[FitResult, Path]:
        """The trial's settings, its run folder (with the failed trial's best.pt when it goes on from it), its training."""
        cfg = build_config({**self.base, **params}, f"trial {trial.number}")
        epochs.total = cfg.epochs
        trial.set_user_attr("config", cfg.flat())
        run_dir = self.out_dir / f"trial-{trial.number:04d}"
        if cfg.save_checkpoint:  # known before it exists: keep_checkpoints removes it whatever the trial's end
            trial.set_user_attr("checkpoint", str((run_dir / "best.pt").resolve()))
        if saved is not None and Path(failed.user_attrs["checkpoint"]).is_file():
            run_dir.mkdir(parents=True, exist_ok=True)  # its best epoch may stay the best
            shutil.copy2(failed.user_attrs["checkpoint"], run_dir / "best.pt")
        inactive = set(self.spec.space) - set(params)
        result = train_in_run(
            run, cfg, self.data, self.folds, cfg.fold, run_dir, on_epoch=epochs, progress=self.reporter.bar(),
            omit_params=inactive, resume=saved,
        )  # fmt: skip
        return result, run_dir


class EpochReport:
    """A trial's epochs as they end (its line, the pruner's report), and its end (user attributes, run)."""

    def __init__(self, trial: optuna.Trial, spec: StudySpec, reporter: Reporter, stopped: Callable[[], bool]):
        self.trial, self.metric, self.reporter, self.stopped = trial, spec.objective.metric, reporter, stopped
        self.better = max if spec.objective.direction == "maximize" else min
        self.total = 0  # the trial's epochs, once its settings are known
        self.done = 0  # epochs run
        self.best: float | None = None
        self.t0 = time.perf_counter()

    def __call__(self, res: EpochResult) -> None:
        self.done = res.epoch
        value = res.val_f1 if self.metric == "val_f1" else res.val_loss
        self.best = value if self.best is None else self.better(self.best, value)
        eta = (time.perf_counter() - self.t0) / res.epoch * (self.total - res.epoch)
        self.reporter.line(
            f"trial {self.trial.number} epoch {res.epoch}/{self.total}  train_loss {res.train_loss:.4f}  "
            f"{self.metric} {value:.4f}  best {self.best:.4f}  {res.seconds:.1f} s  eta {duration(eta)}"
        )
        if self.stopped():
            raise KeyboardInterrupt  # Ctrl-C was pressed where something swallowed it
        self.trial.report(value, res.epoch)
        # after the trial's last epoch pruning saves nothing: the trial is complete, its value counts
        if res.epoch < self.total and self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {res.epoch}")

    def finish(self, run: Run, state: str, status: str | None = None, **extra_tags: Any) -> None:
        self.trial.set_user_attr("epochs", self.done)
        self.trial.set_user_attr("seconds", round(time.perf_counter() - self.t0, 1))
        run.set_tags({"trial_state": state, **extra_tags})
        run.end(status or TRIAL_TO_RUN_STATUS[state])


def end_run_of(failed: optuna.trial.FrozenTrial) -> None:
    """The MLflow run of a failed trial, when a worker that died (on any host) left it RUNNING,
    ends KILLED with its trial's state: its retry is starting."""
    run_id = failed.user_attrs.get("mlflow_run_id")
    if not run_id:
        return
    from mlflow.exceptions import MlflowException

    mlflow = client()
    try:
        run = mlflow.get_run(run_id)
    except MlflowException:  # another store, or deleted
        return
    if run.info.status == "RUNNING":
        end_left_running(mlflow, run_id, run.data.tags, "FAIL", f"its worker died ({failed.user_attrs.get('worker', '?')})")


def run_has_params(run: Run) -> bool:
    return bool(run.client.get_run(run.id).data.params)
