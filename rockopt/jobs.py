"""One tracked training run: data and folds, the loop, and its MLflow run.

Shared by `rockopt train` and, later, by search trials and `cv` folds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rockopt.config import TrainConfig, dump_config
from rockopt.data.folds import Folds, default_folds_path, load_or_create_folds
from rockopt.data.layout import TrainSet, scan_train
from rockopt.data.split import first_unreadable_class, make_split
from rockopt.errors import ConfigError, DataError
from rockopt.train.engine import EpochResult, FitResult, fit
from rockopt.tracking import Run, confusion_png


def prepare_data(cfg: TrainConfig) -> tuple[TrainSet, Folds]:
    """Scan the data set and load (or write) its folds file."""
    if not cfg.data:
        raise ConfigError("no data set given: pass --data DIR or set 'data' in the config")
    data = scan_train(cfg.data)
    bad = first_unreadable_class(data)
    if bad:
        raise DataError(f"{data.root}: class '{bad}' has no readable image")
    path = Path(cfg.folds_file) if cfg.folds_file else default_folds_path(cfg.out_dir, data, cfg.folds, cfg.seed)
    return data, load_or_create_folds(data, path, cfg.folds, cfg.seed)


def check_fold(folds: Folds, fold: int) -> None:
    if not 0 <= fold < folds.k:
        raise ConfigError(f"--fold {fold} is out of range: the folds file {folds.path} has folds 0..{folds.k - 1}")


def train_tracked(
    cfg: TrainConfig,
    data: TrainSet,
    folds: Folds,
    fold: int,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    progress: bool = True,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> tuple[FitResult, str, Path]:
    """Train one fold inside an MLflow run; returns the result, the run id and the run directory."""
    check_fold(folds, fold)
    cfg = cfg.model_copy(update={"fold": fold, "folds": folds.k})
    split = make_split(data, folds, fold)
    name = run_name or f"{cfg.backbone.replace(':', '.')}-f{fold}"
    run_dir = Path(cfg.out_dir) / "train" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    run_dir.mkdir(parents=True, exist_ok=True)
    all_tags = {
        "rockopt.data_fingerprint": data.fingerprint,
        "rockopt.folds_fingerprint": folds.fingerprint,
        "rockopt.fold": str(fold),
        "rockopt.data": str(data.root.resolve()),
        **(tags or {}),
    }
    with Run(cfg.experiment, name, tags=all_tags, parent_run_id=parent_run_id) as run:
        run.log_params(cfg.flat())
        run.log_artifact(dump_config(cfg, run_dir / "config.yaml"))

        def log_epoch(res: EpochResult) -> None:
            run.log_metrics(res.metrics(data.classes), step=res.epoch)
            if on_epoch:
                on_epoch(res)

        result = fit(cfg, split, out_dir=run_dir, on_epoch=log_epoch, progress=progress)
        run.log_metrics({"best_val_f1": result.best_f1, "best_epoch": result.best_epoch}, step=result.best_epoch)
        run.set_tags({"rockopt.run_dir": str(run_dir.resolve()), "rockopt.device": result.device, "rockopt.precision": result.precision})
        run.log_artifacts(write_result_files(result, data.classes, run_dir))
    return result, run.id, run_dir


def write_result_files(result: FitResult, classes: tuple[str, ...], run_dir: Path) -> list[Path]:
    """Confusion matrix image, validation logits with sample ids, and the list of skipped images."""
    files = [
        confusion_png(result.confusion, classes, run_dir / "confusion_matrix.png", f"best epoch {result.best_epoch}: macro-F1 {result.best_f1:.4f}")
    ]
    logits = run_dir / "val_logits.npz"
    np.savez_compressed(
        logits,
        ids=np.asarray(result.val_ids),
        labels=result.val_labels,
        logits=result.val_logits.astype(np.float32),
        classes=np.asarray(classes),
    )
    files.append(logits)
    skipped = run_dir / "skipped_images.txt"
    skipped.write_text("".join(f"{p}\n" for p in result.skipped_paths))
    files.append(skipped)
    return files
