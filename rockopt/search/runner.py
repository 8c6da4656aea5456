"""`rockopt search`: create or resume a study, run trials under one MLflow parent run, summarise."""

from __future__ import annotations

import logging
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from rockopt import stopping
from rockopt.config import RUNTIME_KEYS, TrainConfig, build_config
from rockopt.errors import ConfigError, first_line
from rockopt.data.folds import Folds
from rockopt.data.layout import TrainSet
from rockopt.tracked_run import check_fold, prepare_data
from rockopt.outputs import ensure_dir
from rockopt.report import Reporter, params_text, short
from rockopt.search import factories
from rockopt.search.doctor import repair_gone_local_workers
from rockopt.search.locks import study_lock
from rockopt.search.objective import Objective
from rockopt.search.space import baseline_params
from rockopt.search.storage import STUDIES_DIR, describe_storage, open_storage, resolve_storage, retry_failed, storage_kind
from rockopt.search.study_file import StudySpec, base_settings, load_study_file, with_overrides
from rockopt.tracking import Run, experiment_id, temp_dir
from rockopt.train.model import hub_weights_problem
from rockopt.train.checkpoints import LAST
from rockopt.data.readers import image_reader

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
    requeued: int | None  # the interrupted trial, queued again
    notes: list[str]


# resumed studies may take new values of these: they change how a trial runs, or where the
# (fingerprinted) data set lies, not what the trial means
RESUMABLE = RUNTIME_KEYS | {"data"}


def _meaning(spec: StudySpec) -> StudySpec:
    """The spec as stored with the study: runtime settings come from each invocation instead."""
    return spec.model_copy(update={"fixed": {k: v for k, v in spec.fixed.items() if k not in RUNTIME_KEYS}})


def _refuse_changes(kept: StudySpec, overrides: dict[str, Any], name: str) -> None:
    """A resumed study's trials must stay comparable: refuse a --set that changes what they mean."""
    base = base_settings(kept)
    was = build_config(base, f"study '{name}'")
    changed = []
    for key, value in overrides.items():
        if key in RESUMABLE:
            continue
        if getattr(build_config({**base, key: value}, "--set"), key) != getattr(was, key):
            changed.append(key)
    if changed:
        old = ", ".join(f"{k}={short(getattr(was, k))}" for k in changed)
        new = " ".join(f"{k}={short(overrides[k])}" for k in changed)
        raise ConfigError(
            f"study '{name}' was created with {old}: a resumed study keeps what its trials mean, so --set {new} is refused "
            f"(only runtime settings may change: {', '.join(sorted(RESUMABLE))}); start a new study with --study-name"
        )


def _open_study(
    file_spec: StudySpec, overrides: dict[str, Any], name: str, url: str, source: Path, note: Callable[[str], None]
) -> tuple[optuna.Study, StudySpec, int]:
    """Create the study, or load it with the settings it was created with.

    Returns the study, the spec this invocation's trials run with (stored settings, the file's
    budget and runtime settings, this invocation's --set), and this invocation's number.
    Runs under the study's lock: processes starting together create the tables and the study
    once, and each claims its own number.
    """
    with study_lock(url, name):
        study = optuna.create_study(storage=open_storage(url), study_name=name, direction=file_spec.objective.direction, load_if_exists=True)
        if study.direction.name.lower() != file_spec.objective.direction:
            raise ConfigError(f"study '{name}' exists with direction {study.direction.name.lower()}; the file says {file_spec.objective.direction}")
        attrs = study.user_attrs
        stored = attrs.get("rockopt.spec")
        if stored is None:
            spec = file_spec.model_copy(update={"fixed": {**file_spec.fixed, **overrides}})
            study.set_user_attr("rockopt.spec", _meaning(spec).model_dump(mode="json"))
            study.set_user_attr("rockopt.spec_fingerprint", spec.fingerprint())
            study.set_user_attr("rockopt.file_fingerprint", file_spec.fingerprint())
            study.set_user_attr("rockopt.study_file", str(source))
            if spec.baseline_first:
                defaults = build_config(base_settings(spec), str(source)).flat()
                study.enqueue_trial(baseline_params(spec.space, defaults), user_attrs={"rockopt.baseline": True})
        else:
            kept = StudySpec(**stored)
            if file_spec.fingerprint() != attrs.get("rockopt.file_fingerprint", kept.fingerprint()):
                note(
                    f"{source} changed since study '{name}' was created; it continues with the settings it was "
                    "created with (use --study-name to start a new study with the new file)"
                )
            _refuse_changes(kept, overrides, name)
            runtime = {k: v for k, v in file_spec.fixed.items() if k in RUNTIME_KEYS}
            runtime.update({k: v for k, v in overrides.items() if k in RESUMABLE})
            budget = kept.budget.model_copy(update=file_spec.budget.model_dump(exclude={"max_epochs"}))
            spec = _meaning(kept).model_copy(update={"budget": budget})
            spec = spec.model_copy(update={"fixed": {**spec.fixed, **runtime}})
        # an older study without the counter: its trials so far stand for the invocations
        number = int(attrs.get("rockopt.searches", 0 if stored is None else len(study.trials)))
        study.set_user_attr("rockopt.searches", number + 1)
    return study, spec, number


def _apply_optional_files(base: dict[str, Any], spec: StudySpec, note: Callable[[str], None]) -> None:
    for key in spec.optional_files:
        value = base.get(key)
        if value and not Path(value).expanduser().exists():
            fix = " (--set pretrained_file=PATH for a weights file)" if key == "pretrained_file" else ""
            note(f"{key} {value} is not there; trials run without it{fix}")
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


def _log_plots(study: optuna.Study, run: Run, note: Callable[[str], None]) -> None:
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


def sampler_seed(seed: int, invocation: int, kind: str) -> int:
    """The study's sampler seed, moved by this invocation's number, so that searches started
    together, workers and resumed searches do not propose the very same trials again; the
    first search of a study keeps the seed. On a database server the host name moves it too:
    processes on several hosts claim their numbers without a shared lock."""
    import socket
    import zlib

    offset = invocation
    if kind not in ("sqlite", "journal"):
        offset += zlib.crc32(socket.gethostname().encode()) % 10007
    return seed + offset


def worker_id() -> str:
    """`host:pid`, with the launcher's worker number when there is one: who runs a trial."""
    import os
    import socket

    label = os.environ.get("ROCKOPT_WORKER")
    return f"{socket.gethostname()}:{os.getpid()}" + (f":w{label}" if label else "")


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


@dataclass
class _SearchData:
    base: dict[str, Any]  # every trial's settings before its parameters
    resolved: TrainConfig  # the study's and this invocation's settings, as validated
    dataset: TrainSet
    folds: Folds
    out: Path  # the trials' run folders go here


def _prepare_data(spec: StudySpec, data: str | Path | None, source: Path, name: str, note, show_cache_build: bool) -> _SearchData:
    """The trials' shared settings, the data set, the study's folds file and, if asked, the image cache."""
    base = base_settings(spec)
    if data is not None:
        base["data"] = str(data)
    _apply_optional_files(base, spec, note)
    base_cfg = build_config(base, f"{source}")
    out = ensure_dir(Path(base_cfg.out_dir) / name, "out_dir")
    STUDIES_DIR.mkdir(exist_ok=True)
    dataset, folds = prepare_data(base_cfg, folds_file=STUDIES_DIR / f"{name}.folds.csv")
    check_fold(folds, base_cfg.fold)
    if base_cfg.cache == "build":  # once, with its own progress bar, before the trials ask for it
        image_reader(base_cfg, dataset.abs_paths(), str(dataset.root), progress=show_cache_build)
    base["folds_file"] = str(folds.path.resolve())  # exported configs and `cv` reuse the study's folds
    base["experiment"] = name
    return _SearchData(base, base_cfg, dataset, folds, out)


def _set_algorithms(optuna_study: optuna.Study, spec: StudySpec, invocation: int, url: str) -> dict[str, str]:
    """Give the study its Optuna sampler and pruner, as the study file names them; their descriptions."""
    optuna_sampler_settings = dict(spec.sampler.model_extra or {})
    if optuna_sampler_settings.get("seed") is not None:
        optuna_sampler_settings["seed"] = sampler_seed(int(optuna_sampler_settings["seed"]), invocation, storage_kind(url))
    pruner_settings = dict(spec.pruner.model_extra or {})
    optuna_study.sampler = factories.create_optuna_sampler(spec.sampler.name, optuna_sampler_settings)
    optuna_study.pruner = factories.create_pruner(spec.pruner.name, pruner_settings)
    return {
        "rockopt.sampler": factories.describe(spec.sampler.name, optuna_sampler_settings),
        "rockopt.pruner": factories.describe(spec.pruner.name, pruner_settings),
    }


def _open_parent_run(
    name: str, label: str, worker: str, spec: StudySpec, source: Path, url: str, invocation: int,
    algorithms: dict[str, str], prepared: _SearchData, applied: dict[str, Any], n_trials: int, timeout: float | None,
) -> Run:  # fmt: skip
    """The search's MLflow parent run: what runs, on which data and folds, with which --set."""
    experiment_id(name, description=spec.description.strip() or None)
    parent = Run(
        name,
        f"search-{time.strftime('%Y%m%d-%H%M%S')}" + (f"-w{label}" if label else ""),
        tags={
            "rockopt.study": name,
            "rockopt.worker": worker,
            "rockopt.study_file": str(source),
            "rockopt.storage": describe_storage(url),
            "rockopt.storage_kind": storage_kind(url),
            **algorithms,
            "rockopt.objective": f"{spec.objective.metric} ({spec.objective.direction})",
            "rockopt.data_fingerprint": prepared.dataset.fingerprint,
            "rockopt.folds_fingerprint": prepared.folds.fingerprint,
            "rockopt.invocation": str(invocation),
            **({"rockopt.set": params_text(applied)} if applied else {}),
        },
    )
    parent.log_params(
        {"n_trials": n_trials, "timeout": timeout, "max_epochs": prepared.resolved.epochs, **{f"set.{k}": v for k, v in applied.items()}}
    )
    parent.log_artifact(source, "study")
    return parent


class _TrialLine:
    """Optuna callback after each trial: a line, the bar, the parent run's running counts, the disk."""

    def __init__(self, reporter: Reporter, parent: Run, keep_checkpoints: int, stopped: Callable[[], bool]):
        self.reporter, self.parent, self.keep, self.stopped = reporter, parent, keep_checkpoints, stopped
        self.finished = 0
        self.task = None  # the trials bar, once the display runs

    def __call__(self, study: optuna.Study, done: optuna.trial.FrozenTrial) -> None:
        if self.stopped():
            raise KeyboardInterrupt  # pressed where it was swallowed: no next trial
        self.finished += 1
        c = _counts(study)
        best = _best(study)
        if self.task is not None:
            self.reporter.progress.update(
                self.task,
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
        self.reporter.line(
            f"trial {done.number} {done.state.name}: {what}  ({done.user_attrs.get('seconds', '?')} s)  {params_text(done.params)}"
        )
        # the parent run follows the study as it goes: its best value is there before the search ends
        progress_metrics = {f"n_{k.lower()}": v for k, v in c.items() if k in ("COMPLETE", "PRUNED", "FAIL")}
        if best:
            progress_metrics["best_value"] = best.value
        self.parent.log_metrics(progress_metrics, step=self.finished)
        _prune_checkpoints(study, self.keep)


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
    overrides = dict(overrides or {})
    file_spec, source = load_study_file(study)
    check_request(with_overrides(file_spec, overrides, source), data, n_trials, timeout)
    name = study_name or source.stem
    url = resolve_storage(storage, name)
    worker = worker_id()
    label = worker.rsplit(":w", 1)[1] if ":w" in worker else ""  # the launcher's worker number
    reporter = Reporter(bars=progress, prefix=f"[w{label}] " if label else "")
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        reporter.line(f"note: {text}")

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # rockopt reports trials itself, one line each
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    optuna_study, spec, invocation = _open_study(file_spec, overrides, name, url, source, note)
    repaired = repair_gone_local_workers(optuna_study)
    for n, _ in repaired.stuck_trials:
        note(f"trial {n} was left running by a worker of this host that is gone: marked FAIL and queued again")
    if repaired.stuck_runs:
        note(f"{len(repaired.stuck_runs)} MLflow run(s) of workers of this host that are gone ended KILLED")
    prepared = _prepare_data(spec, data, source, name, note, show_cache_build=progress and reporter.terminal)
    algorithms = _set_algorithms(optuna_study, spec, invocation, url)
    n_trials = n_trials if n_trials is not None else spec.budget.n_trials
    timeout = timeout if timeout is not None else spec.budget.timeout
    applied = {k: getattr(prepared.resolved, k) for k in overrides}  # this invocation's --set, as resolved
    parent = _open_parent_run(name, label, worker, spec, source, url, invocation, algorithms, prepared, applied, n_trials, timeout)
    started = len(optuna_study.trials)
    interrupted = False

    with parent, stopping.remembered() as stopped:  # anything unexpected ends the parent run FAILED, never RUNNING
        objective = Objective(
            spec, prepared.base, prepared.dataset, prepared.folds, study_name=name, experiment=name, parent_run_id=parent.id,
            out_dir=prepared.out, reporter=reporter, worker=worker, stopped=stopped,
        )  # fmt: skip
        trial_line = _TrialLine(reporter, parent, spec.budget.keep_checkpoints, stopped)
        with reporter:
            if reporter.progress is not None:
                trial_line.task = reporter.progress.add_task("trials", total=n_trials)
            try:
                optuna_study.optimize(
                    objective,
                    n_trials=n_trials,
                    timeout=timeout,
                    catch=(Exception,),
                    callbacks=[trial_line],
                    gc_after_trial=True,
                )
            except KeyboardInterrupt:
                interrupted = True
        if objective.interrupted is not None:  # Optuna failed it: queued again (every time), to go on from its last epoch
            retry_failed(max_retry=None)(optuna_study, optuna_study.trials[objective.interrupted])
        counts = _counts(optuna_study)
        best = _best(optuna_study)
        summary = {f"n_{k.lower()}": v for k, v in counts.items()}
        if best:
            summary["best_value"] = best.value
            parent.set_tags({"rockopt.best_trial": best.number, "rockopt.best_run_id": best.user_attrs.get("mlflow_run_id", "")})
        parent.log_metrics(summary, step=trial_line.finished)
        _prune_checkpoints(optuna_study, spec.budget.keep_checkpoints)  # an interrupted trial's best.pt too
        if not interrupted:
            _log_plots(optuna_study, parent, note)
        parent.end("KILLED" if interrupted else "FINISHED")
    return SearchSummary(
        study_name=name,
        storage=describe_storage(url),
        parent_run_id=parent.id,
        counts=counts,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        trials_run=len(optuna_study.trials) - started,
        interrupted=interrupted,
        requeued=objective.interrupted,
        notes=notes,
    )
