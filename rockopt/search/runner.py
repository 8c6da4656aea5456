"""`rockopt search`: create or resume a study, run trials under one MLflow parent run, summarise."""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from rockopt.config import build_config
from rockopt.errors import ConfigError
from rockopt.jobs import check_fold, prepare_data
from rockopt.search import factories
from rockopt.search.doctor import repair_gone_local_workers
from rockopt.search.objective import Objective
from rockopt.search.storage import STUDIES_DIR, describe_storage, open_storage, resolve_storage, storage_kind
from rockopt.search.study_file import StudySpec, base_settings, load_study_file
from rockopt.tracking import Run, temp_dir
from rockopt.train.engine import image_reader, progress_display

log = logging.getLogger(__name__)


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
    notes: list[str]


def _open_study(spec: StudySpec, name: str, url: str, source: Path, notes: list[str]) -> tuple[optuna.Study, StudySpec]:
    """Create the study, or load it and keep the settings it was created with."""
    study = optuna.create_study(
        storage=open_storage(url),
        study_name=name,
        direction=spec.objective.direction,
        load_if_exists=True,
    )
    if study.direction.name.lower() != spec.objective.direction:
        raise ConfigError(f"study '{name}' exists with direction {study.direction.name.lower()}; the file says {spec.objective.direction}")
    stored = study.user_attrs.get("rockopt.spec")
    if stored is None:
        study.set_user_attr("rockopt.spec", spec.model_dump(mode="json"))
        study.set_user_attr("rockopt.spec_fingerprint", spec.fingerprint())
        study.set_user_attr("rockopt.study_file", str(source))
        return study, spec
    kept = StudySpec(**stored)
    if kept.fingerprint() != spec.fingerprint():
        notes.append(
            f"{source} changed since study '{name}' was created; it continues with the settings it was "
            "created with (use --study-name to start a new study with the new file)"
        )
    return study, kept.model_copy(update={"budget": spec.budget})


def _apply_optional_files(base: dict[str, Any], spec: StudySpec, notes: list[str]) -> None:
    for key in spec.optional_files:
        value = base.get(key)
        if value and not Path(value).expanduser().exists():
            notes.append(f"{key} {value} is not there; trials run without it")
            base.pop(key)


def _counts(study: optuna.Study) -> dict[str, int]:
    c = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    return {s: c.get(s, 0) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}


def _best(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    try:
        return study.best_trial
    except ValueError:  # no complete trial yet
        return None


def _prune_checkpoints(study: optuna.Study, keep: int) -> None:
    """Keep best.pt of the top `keep` complete trials only: a study of big backbones
    would otherwise fill the disk with checkpoints nobody exports."""
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    done.sort(key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    keepers = {t.number for t in done[:keep]}
    for t in study.get_trials(deepcopy=False):
        path = t.user_attrs.get("checkpoint")
        if path and t.number not in keepers and t.state != TrialState.RUNNING:
            Path(path).unlink(missing_ok=True)


def _log_plots(study: optuna.Study, run: Run, notes: list[str]) -> None:
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
                notes.append(f"no {name} plot: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
                continue
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(10, 6)
            path = Path(tmp) / f"{name}.png"
            fig.savefig(path, dpi=90, bbox_inches="tight")
            plt.close(fig)
            run.log_artifact(path, "plots")


def _worker_seed(seed: int, trials_so_far: int, kind: str) -> int:
    """The study's sampler seed, moved by the worker number, the host (for a shared database)
    and the trials already run: workers starting together, or a resumed search, must not
    propose the very same trials again. The first worker of a new study keeps the seed."""
    import os
    import socket
    import zlib

    offset = trials_so_far + int(os.environ.get("ROCKOPT_WORKER", "0") or 0)
    if kind not in ("sqlite", "journal"):
        offset += zlib.crc32(socket.gethostname().encode()) % 10007 if os.environ.get("ROCKOPT_WORKER") else 0
    return seed + offset


def worker_id() -> str:
    """`host:pid`, with the launcher's worker number when there is one: who runs a trial."""
    import os
    import socket

    label = os.environ.get("ROCKOPT_WORKER")
    return f"{socket.gethostname()}:{os.getpid()}" + (f":w{label}" if label else "")


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
    out_dir: str | Path = "runs",
) -> SearchSummary:
    """Run `n_trials` more trials (default: the study file's budget) of STUDY; resumable."""
    spec, source = load_study_file(study, fixed_overrides=overrides)
    name = study_name or source.stem
    url = resolve_storage(storage, name)
    notes: list[str] = []
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # rockopt reports trials itself, one line each
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    ostudy, spec = _open_study(spec, name, url, source, notes)
    for n in repair_gone_local_workers(ostudy):
        notes.append(f"trial {n} was left running by a worker of this host that is gone: marked FAIL and queued again")

    base = base_settings(spec)
    if data is not None:
        base["data"] = str(data)
    _apply_optional_files(base, spec, notes)
    cfg0 = build_config(base, f"{source}")
    STUDIES_DIR.mkdir(exist_ok=True)
    dataset, folds = prepare_data(cfg0, folds_file=STUDIES_DIR / f"{name}.folds.csv")
    check_fold(folds, cfg0.fold)
    if cfg0.cache == "build":  # once, with its own progress bar, before the trials ask for it
        image_reader(cfg0, dataset.abs_paths(), str(dataset.root), progress=progress)
    base["folds_file"] = str(folds.path.resolve())  # exported configs and `cv` reuse the study's folds
    base["experiment"] = name

    n_trials = n_trials if n_trials is not None else spec.budget.n_trials
    timeout = timeout if timeout is not None else spec.budget.timeout
    sampler_settings = dict(spec.sampler.model_extra or {})
    if sampler_settings.get("seed") is not None:
        sampler_settings["seed"] = _worker_seed(int(sampler_settings["seed"]), len(ostudy.trials), storage_kind(url))
    pruner_settings = dict(spec.pruner.model_extra or {})
    ostudy.sampler = factories.create_sampler(spec.sampler.name, sampler_settings)
    ostudy.pruner = factories.create_pruner(spec.pruner.name, pruner_settings)

    me = worker_id()
    parent = Run(
        name,
        f"search-{time.strftime('%Y%m%d-%H%M%S')}" + (f"-w{me.rsplit(':w', 1)[1]}" if ":w" in me else ""),
        tags={
            "rockopt.study": name,
            "rockopt.worker": me,
            "rockopt.study_file": str(source),
            "rockopt.storage": describe_storage(url),
            "rockopt.storage_kind": storage_kind(url),
            "rockopt.sampler": factories.describe(spec.sampler.name, sampler_settings),
            "rockopt.pruner": factories.describe(spec.pruner.name, pruner_settings),
            "rockopt.objective": f"{spec.objective.metric} ({spec.objective.direction})",
            "rockopt.data_fingerprint": dataset.fingerprint,
            "rockopt.folds_fingerprint": folds.fingerprint,
        },
    )
    parent.log_params({"n_trials": n_trials, "timeout": timeout, "max_epochs": spec.budget.max_epochs})

    bar = progress_display(progress, transient=False)
    out = Path(out_dir) / name
    interrupted = False
    started = len(ostudy.trials)

    def trial_line(study_: optuna.Study, done: optuna.trial.FrozenTrial) -> None:
        c = _counts(study_)
        best = _best(study_)
        bar.update(
            trials_task,
            advance=1,
            description=f"trials: {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed"
            + (f", best {best.value:.4f} (#{best.number})" if best else ""),
        )
        if done.state == TrialState.COMPLETE:
            what = f"value {done.value:.4f}"
        elif done.state == TrialState.PRUNED:
            what = f"pruned at epoch {done.user_attrs.get('epochs')}"
        else:
            what = done.user_attrs.get("error", "failed")
        bar.console.print(
            prefix + f"trial {done.number} {done.state.name}: {what}  "
            f"({done.user_attrs.get('seconds', '?')} s)  {done.params}",
            highlight=False,
            markup=False,
        )
        _prune_checkpoints(study_, spec.budget.keep_checkpoints)

    prefix = f"[w{me.rsplit(':w', 1)[1]}] " if ":w" in me else ""
    objective = Objective(
        spec, base, dataset, folds, study_name=name, experiment=name, parent_run_id=parent.id, out_dir=out, progress=bar, worker=me
    )
    with parent:  # anything unexpected ends the parent run FAILED, never RUNNING
        with bar:
            trials_task = bar.add_task("trials", total=n_trials)
            try:
                ostudy.optimize(
                    objective,
                    n_trials=n_trials,
                    timeout=timeout,
                    catch=(Exception,),
                    callbacks=[trial_line],
                    gc_after_trial=True,
                )
            except KeyboardInterrupt:
                interrupted = True
        counts = _counts(ostudy)
        best = _best(ostudy)
        summary = {f"n_{k.lower()}": v for k, v in counts.items()}
        if best:
            summary["best_value"] = best.value
            parent.set_tags({"rockopt.best_trial": best.number, "rockopt.best_run_id": best.user_attrs.get("mlflow_run_id", "")})
        parent.log_metrics(summary, step=0)
        if not interrupted:
            _log_plots(ostudy, parent, notes)
        parent.end("KILLED" if interrupted else "FINISHED")
    return SearchSummary(
        study_name=name,
        storage=describe_storage(url),
        parent_run_id=parent.id,
        counts=counts,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        trials_run=len(ostudy.trials) - started,
        interrupted=interrupted,
        notes=notes,
    )
