"""A search's MLflow parent run: opened from the request, kept up to date after each trial (a
line, the bar, running counts, the disk), closed with the study's summary and plots."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import TrialState

from rockopt.errors import first_line
from rockopt.report import Reporter, params_text
from rockopt.search.inputs import TrialInputs
from rockopt.search.request import SearchRequest
from rockopt.search.storage import describe_storage, storage_kind
from rockopt.search.study import StoredStudy, best_trial, counts
from rockopt.tracking import WORKER_TAG, Run, experiment_id, temp_dir
from rockopt.train.checkpoints import LAST


def open_parent_run(request: SearchRequest, stored: StoredStudy, inputs: TrialInputs) -> Run:
    """The search's MLflow parent run: what runs, on which data and folds, with which --set."""
    spec = stored.spec
    applied = {k: getattr(inputs.resolved, k) for k in request.overrides}  # this invocation's --set, as resolved
    experiment_id(request.name, description=spec.description.strip() or None)
    parent = Run(
        request.name,
        f"search-{time.strftime('%Y%m%d-%H%M%S')}" + (f"-w{request.label}" if request.label else ""),
        tags={
            "rockopt.study": request.name,
            WORKER_TAG: request.worker,
            "rockopt.study_file": str(request.source),
            "rockopt.storage": describe_storage(request.url),
            "rockopt.storage_kind": storage_kind(request.url),
            **stored.algorithms,
            "rockopt.objective": f"{spec.objective.metric} ({spec.objective.direction})",
            "rockopt.data_fingerprint": inputs.dataset.fingerprint,
            "rockopt.folds_fingerprint": inputs.folds.fingerprint,
            "rockopt.invocation": str(stored.invocation),
            **({"rockopt.set": params_text(applied)} if applied else {}),
        },
    )
    parent.log_params(
        {"n_trials": request.trials, "timeout": request.seconds, "max_epochs": inputs.resolved.epochs, **{f"set.{k}": v for k, v in applied.items()}}
    )
    parent.log_artifact(request.source, "study")
    return parent


class TrialLine:
    """Optuna callback after each trial: a line, the bar, the parent run's running counts, the disk."""

    def __init__(self, reporter: Reporter, parent: Run, keep_checkpoints: int, stopped: Callable[[], bool]):
        self.reporter, self.parent, self.keep, self.stopped = reporter, parent, keep_checkpoints, stopped
        self.finished = 0
        self.task = None  # the trials bar, once the display runs

    def __call__(self, study: optuna.Study, done: optuna.trial.FrozenTrial) -> None:
        if self.stopped():
            raise KeyboardInterrupt  # pressed where it was swallowed: no next trial
        self.finished += 1
        c = counts(study)
        best = best_trial(study)
        if self.task is not None:
            self.reporter.progress.update(
                self.task,
                advance=1,
                description=f"trials: {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed"
                + (f", best {best.value:.4f} (#{best.number})" if best else ""),
            )
        self.reporter.line(f"trial {done.number} {done.state.name}: {_outcome(done)}  ({done.user_attrs.get('seconds', '?')} s)  {params_text(done.params)}")
        # the parent run follows the study as it goes: its best value is there before the search ends
        progress_metrics = {f"n_{k.lower()}": v for k, v in c.items() if k in ("COMPLETE", "PRUNED", "FAIL")}
        if best:
            progress_metrics["best_value"] = best.value
        self.parent.log_metrics(progress_metrics, step=self.finished)
        prune_checkpoints(study, self.keep)


def _outcome(done: optuna.trial.FrozenTrial) -> str:
    if done.state == TrialState.COMPLETE:
        return f"value {done.value:.4f}"
    if done.state == TrialState.PRUNED:
        return f"pruned at epoch {done.user_attrs.get('epochs')}"
    return done.user_attrs.get("error", "failed")


def close_parent_run(
    parent: Run, study: optuna.Study, keep_checkpoints: int, step: int, interrupted: bool, note: Callable[[str], None]
) -> tuple[dict[str, int], optuna.trial.FrozenTrial | None]:
    """The study's counts and best trial on the parent run, the checkpoints pruned, the plots
    (of a search that was not interrupted); the run ends. Returns the counts and best trial."""
    c = counts(study)
    best = best_trial(study)
    summary = {f"n_{k.lower()}": v for k, v in c.items()}
    if best:
        summary["best_value"] = best.value
        parent.set_tags({"rockopt.best_trial": best.number, "rockopt.best_run_id": best.user_attrs.get("mlflow_run_id", "")})
    parent.log_metrics(summary, step=step)
    prune_checkpoints(study, keep_checkpoints)  # an interrupted trial's best.pt too
    if not interrupted:
        log_plots(study, parent, note)
    parent.end("KILLED" if interrupted else "FINISHED")
    return c, best


def prune_checkpoints(study: optuna.Study, keep: int) -> None:
    """Keep best.pt and last.pt of the top `keep` complete trials only: a study of big backbones
    would otherwise fill the disk with checkpoints nobody exports. A failed trial's files stay
    while its retry waits or runs: the retry goes on from them."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    done.sort(key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    keepers = {t.number for t in done[:keep]}
    retried = {n for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING) for n in t.system_attrs.get("retry_history", [])}
    for t in trials:
        path = t.user_attrs.get("checkpoint")
        # a waiting retry carries its failed trial's user attributes, checkpoint path included
        if not path or t.number in keepers | retried or t.state in (TrialState.RUNNING, TrialState.WAITING):
            continue
        Path(path).unlink(missing_ok=True)
        Path(path).with_name(LAST).unlink(missing_ok=True)


def log_plots(study: optuna.Study, run: Run, note: Callable[[str], None]) -> None:
    """Optuna's plots of the study, as the run's artifacts; one that cannot be drawn is a note."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plots = {
        "optimization_history": ovm.plot_optimization_history,
        "param_importances": ovm.plot_param_importances,
        "parallel_coordinate": ovm.plot_parallel_coordinate,
        "intermediate_values": ovm.plot_intermediate_values,
    }
    with temp_dir() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, plot in plots.items():
            try:
                ax = plot(study)
            except Exception as e:  # a plot is a nicety: too few trials for it must not fail a finished search
                note(f"no {name} plot: {first_line(e)}")
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(10, 6)
            path = Path(tmp) / f"{name}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            run.log_artifact(path, "plots")
