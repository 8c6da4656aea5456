"""`rockopt best`: the top trials of a study, and exporting them for `train --config` and `cv`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from rockopt.config import build_config, dump_config
from rockopt.errors import ConfigError
from rockopt.outputs import ensure_dir
from rockopt.search.storage import describe_storage, exists_in, open_storage, resolve_storage
from rockopt.tracking import client


def study_name_of(ref: str | Path) -> str:
    """`quick`, `studies/quick.yaml` and `/x/quick.yml` all name the study `quick`."""
    p = Path(ref)
    return p.stem if p.suffix in (".yaml", ".yml") else str(ref)


def load_existing(ref: str | Path, storage: str | None = None, study_name: str | None = None) -> tuple[optuna.Study, str]:
    name = study_name or study_name_of(ref)
    url = resolve_storage(storage, name)
    if not exists_in(url, name):
        raise ConfigError(f"no study '{name}' in {describe_storage(url)}; start it with: rockopt search --study {ref}")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.load_study(study_name=name, storage=open_storage(url)), url


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
