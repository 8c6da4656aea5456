"""`rockopt best`: the top trials of a study, as records for scripts, and exported for `train --config` and `cv`."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from rockopt.config import build_config, dump_config
from rockopt.errors import ConfigError
from rockopt.model_registry import LoggedModel, log_run_checkpoint
from rockopt.outputs import ensure_dir
from rockopt.search.storage import describe_storage
from rockopt.search.study import load_existing
from rockopt.tracking import client


@dataclass
class BestTrials:
    study_name: str
    counts: dict[str, int]  # the study's trials by state, the states it has only
    trials: list[FrozenTrial]  # the top complete trials, best first
    params: list[str]  # the names of their parameters, sorted
    exported: list[Path]  # a folder per trial, when asked


def best_trials(
    ref: str | Path, top: int, storage: str | None = None, study_name: str | None = None, export: str | Path | None = None
) -> BestTrials:
    """The TOP complete trials of an existing study; written under EXPORT (`--export`) when given."""
    if export:
        ensure_dir(export, "--export")  # before the study is read: nothing is shown as if it will succeed
    study, url = load_existing(ref, storage, study_name)
    trials = top_trials(study, top)
    counts = Counter(t.state.name for t in study.get_trials(deepcopy=False))
    names = sorted({k for t in trials for k in t.params})
    exported = export_trials(study, trials, export, url) if export else []
    return BestTrials(study.study_name, dict(sorted(counts.items())), trials, names, exported)


def trial_records(best: BestTrials) -> list[dict[str, Any]]:
    """One record per trial, for `--format json/csv`: rank, trial, value, epochs, MLflow run id, its parameters."""
    return [
        {"study": best.study_name, "rank": rank, "trial": t.number, "value": t.value, "epochs": t.user_attrs.get("epochs"),
         "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""), **{k: t.params.get(k) for k in best.params}}
        for rank, t in enumerate(best.trials, 1)
    ]  # fmt: skip


def top_trials(study: optuna.Study, k: int) -> list[FrozenTrial]:
    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    done.sort(key=lambda t: t.value, reverse=study.direction == optuna.study.StudyDirection.MAXIMIZE)
    return done[:k]


def export_trials(
    study: optuna.Study, trials: list[FrozenTrial], out: str | Path, storage_url: str, what: str = "--export"
) -> list[Path]:
    """Per trial, OUT/trial-N/: config.yaml, best.pt (when kept) and summary.json. Tags the MLflow runs.

    An OUT that cannot be written is a ConfigError naming it as WHAT, before anything is written.
    """
    out = ensure_dir(out, what)
    written = []
    mlflow = client()
    for t in trials:
        d = out / f"trial-{t.number:04d}"
        d.mkdir(parents=True, exist_ok=True)
        cfg = build_config(t.user_attrs["config"], f"trial {t.number} of study '{study.study_name}'")
        dump_config(cfg, d / "config.yaml")
        ckpt = t.user_attrs.get("checkpoint")
        kept = bool(ckpt and Path(ckpt).is_file())
        if kept:
            shutil.copy2(ckpt, d / "best.pt")
        run_id = t.user_attrs.get("mlflow_run_id")
        summary = {
            "study": study.study_name,
            "storage": describe_storage(storage_url),
            "trial": t.number,
            "value": t.value,
            "params": t.params,
            "best_epoch": t.user_attrs.get("best_epoch"),
            "epochs": t.user_attrs.get("epochs"),
            "mlflow_run_id": run_id,
            "checkpoint": "best.pt" if kept else None,
        }
        (d / "summary.json").write_text(json.dumps(summary, indent=2))
        if run_id:
            mlflow.set_tag(run_id, "rockopt.exported_to", str(d.resolve()))
        written.append(d)
    return written


def register_best(
    ref: str | Path, name: str, alias: str, tta: str = "none", storage: str | None = None, study_name: str | None = None
) -> tuple[FrozenTrial, LoggedModel]:
    """`best --register`: the best complete trial's best.pt as an MLflow model linked to the trial's
    run (at its best epoch), registered as a new version of NAME with ALIAS on it (both checked
    before anything is logged)."""
    study, _ = load_existing(ref, storage, study_name)
    trials = top_trials(study, 1)
    if not trials:
        raise ConfigError(f"study '{study.study_name}' has no complete trial yet: nothing to register")
    t = trials[0]
    ckpt, run_id = t.user_attrs.get("checkpoint"), t.user_attrs.get("mlflow_run_id")
    if not ckpt or not Path(ckpt).is_file():
        raise ConfigError(f"trial {t.number} of study '{study.study_name}' kept no checkpoint ({ckpt or 'none recorded'}): nothing to register")
    if not run_id:
        raise ConfigError(f"trial {t.number} of study '{study.study_name}' names no MLflow run to link the model to")
    step = int(t.user_attrs.get("best_epoch") or 0)  # the run's metrics at its best epoch go with the model
    return t, log_run_checkpoint(run_id, ckpt, step, name, alias, tta)
