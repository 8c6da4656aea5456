"""One tracked training run: data and folds, the loop, and its MLflow run.

Shared by `rockopt train`, search trials and `cv` folds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rockopt.config import RUNTIME_KEYS, TrainConfig, build_config, dump_config
from rockopt.data.cache import data_cache_dir, stat_images
from rockopt.data.folds import Folds, default_folds_path, load_or_create_folds
from rockopt.data.layout import TrainSet, scan_train
from rockopt.data.split import first_unreadable_class, make_split
from rockopt.errors import ConfigError, DataError
from rockopt.outputs import ensure_dir
from rockopt.report import Reporter, params_text
from rockopt.train.checkpoints import LAST, load_state
from rockopt.train.engine import EpochResult, FitResult, epoch_history, fit
from rockopt.tracking import DatasetRecord, Run, confusion_png


CLASS_F1_TABLE = "val_f1_per_class.json"


def prepare_data(cfg: TrainConfig, folds_file: str | Path | None = None) -> tuple[TrainSet, Folds]:
    """Scan the data set and load (or write) its folds file: FOLDS_FILE, the config's, or the default."""
    if not cfg.data:
        raise ConfigError("no data set given: pass --data DIR or set 'data' in the config")
    data = scan_train(cfg.data)
    ensure_dir(cfg.out_dir, "out_dir")  # before a model or a run exists
    if cfg.cache == "build":  # refuse an unwritable cache_dir before a model or a run exists
        ensure_dir(data_cache_dir(data.root, cfg.cache_dir), "cache_dir" if cfg.cache_dir else "image cache directory")
    bad = first_unreadable_class(data)
    if bad:
        raise DataError(f"{data.root}: class '{bad}' has no readable image")
    path = folds_file or cfg.folds_file or default_folds_path(cfg.out_dir, data, cfg.folds, cfg.folds_seed)
    return data, load_or_create_folds(data, path, cfg.folds, cfg.folds_seed)


def check_fold(folds: Folds, fold: int) -> None:
    if not 0 <= fold < folds.k:
        raise ConfigError(f"--fold {fold} is out of range: the folds file {folds.path} has folds 0..{folds.k - 1}")


def run_tags(data: TrainSet, folds: Folds, fold: int) -> dict[str, str]:
    return {
        "rockopt.data_fingerprint": data.fingerprint,
        "rockopt.folds_fingerprint": folds.fingerprint,
        "rockopt.fold": str(fold),
        "rockopt.data": str(data.root.resolve()),
    }


def fold_datasets(data: TrainSet, folds: Folds, fold: int) -> list[DatasetRecord]:
    """The training and validation images of FOLD, as the run's MLflow dataset inputs."""
    head = f"{data.fingerprint}\n{folds.fingerprint}\nfold {fold}\n"
    root = data.root.resolve()
    records = []
    for context, rows in zip(("training", "validation"), folds.split(fold)):
        rels = [data.paths[i] for i in rows]
        digest = files_digest(f"{context}\n{head}", rels, stat_images(data.root, rels))
        records.append(DatasetRecord(context, root.name, digest, str(root), len(rels)))
    return records


def files_digest(head: str, names: Sequence[str], stats: Sequence[Sequence[int]]) -> str:
    """32 hex digits of HEAD and each file's name, bytes and mtime (STATS, as `stat_images` gives them).

    The data fingerprint covers paths, labels and sizes, not content: a file rewritten at the
    same size keeps it. Its mtime changes, so a dataset digest adds it, as the image cache does;
    hashing the pixels would read the whole data set every run.
    """
    lines = "".join(f"{n}\t{size}\t{mtime}\n" for n, (size, mtime) in zip(names, stats))
    return hashlib.sha256((head + lines).encode()).hexdigest()[:32]


def train_in_run(
    run: Run,
    cfg: TrainConfig,
    data: TrainSet,
    folds: Folds,
    fold: int,
    run_dir: Path,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    progress=True,
    omit_params: set[str] = frozenset(),
    resume: dict | None = None,
) -> FitResult:
    """Train one fold and log it all to RUN (params, per-epoch metrics, result files).

    The caller owns the run and decides how it ends. `omit_params`: settings not to log as
    params (a search leaves out conditional parameters that did not apply to the trial).
    RESUME: a saved state (`last.pt`) to continue from. When RUN is the run that saved it,
    its params and earlier epochs are already there; otherwise (a retried trial's new run)
    they are logged first, and the earlier epochs go through ON_EPOCH again (a pruner sees
    every epoch).
    """
    check_fold(folds, fold)
    cfg = cfg.model_copy(update={"fold": fold, "folds": folds.k})
    split = make_split(data, folds, fold)
    run.log_datasets(fold_datasets(data, folds, fold))  # before training: a run that fails still says what it read
    run_dir.mkdir(parents=True, exist_ok=True)
    log_epoch = _EpochLog(run, data.classes, on_epoch)
    earlier = epoch_history(resume) if resume is not None else []
    if resume is not None and resume["meta"].get("mlflow_run_id") == run.id:
        # the run that saved the state: its params and earlier epochs are logged already
        saved = resume["config"]
        changed = {k: v for k, v in cfg.flat().items() if k in RUNTIME_KEYS and saved.get(k) != v}
        run.set_tags(
            {"rockopt.resumed_at_epoch": resume["epoch"]} | ({"rockopt.resumed_with": params_text(changed)} if changed else {})
        )
        for res in earlier:
            log_epoch.track_best(res)
    else:
        run.log_params({k: v for k, v in cfg.flat().items() if k not in omit_params})
        run.log_artifact(dump_config(cfg, run_dir / "config.yaml"))
        for res in earlier:
            log_epoch(res)
    result = fit(
        cfg, split, out_dir=run_dir, on_epoch=log_epoch, progress=progress, resume=resume,
        meta={"mlflow_run_id": run.id, "experiment": cfg.experiment, "folds_file": str(folds.path.resolve())},
    )  # fmt: skip
    run.set_tags(
        {
            "rockopt.run_dir": str(run_dir.resolve()),
            "rockopt.device": result.device,
            "rockopt.precision": result.precision,
            "rockopt.images": result.images,
        }
    )
    run.log_artifacts(write_result_files(result, data.classes, run_dir))
    return result


class _EpochLog:
    """Logs each epoch to RUN, then passes it to ON_EPOCH. The best so far goes with every
    epoch: a run stopped early (pruned, failed, killed) still shows the value it reached,
    where the MLflow UI sorts and plots it."""

    def __init__(self, run: Run, classes: tuple[str, ...], on_epoch: Callable[[EpochResult], None] | None):
        self.run, self.classes, self.on_epoch = run, classes, on_epoch
        self.best = {"best_val_f1": -1.0, "best_epoch": 0}

    def track_best(self, res: EpochResult) -> None:
        if res.val_f1 > self.best["best_val_f1"]:
            self.best.update(best_val_f1=res.val_f1, best_epoch=res.epoch)

    def __call__(self, res: EpochResult) -> None:
        self.track_best(res)
        self.run.log_metrics({**res.metrics(), **self.best}, step=res.epoch)
        # per-class F1 as one table (epoch, class, f1), not one chart per class
        f1 = [float(f) for f in res.class_f1]
        self.run.log_table({"epoch": [res.epoch] * len(self.classes), "class": list(self.classes), "f1": f1}, CLASS_F1_TABLE)
        if self.on_epoch:
            self.on_epoch(res)


def train_tracked(
    cfg: TrainConfig,
    data: TrainSet,
    folds: Folds,
    fold: int,
    *,
    on_epoch: Callable[[EpochResult], None] | None = None,
    progress=True,
) -> tuple[FitResult, str, Path]:
    """Train one fold inside its own MLflow run; returns the result, the run id and the run directory."""
    check_fold(folds, fold)
    name = f"{cfg.backbone.replace(':', '.')}-f{fold}"
    run_dir = Path(cfg.out_dir) / "train" / f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
    with Run(cfg.experiment, name, tags=run_tags(data, folds, fold)) as run:
        result = train_in_run(run, cfg, data, folds, fold, run_dir, on_epoch=on_epoch, progress=progress)
    return result, run.id, run_dir


class TrainedFold(NamedTuple):
    fold: int
    result: FitResult
    run_id: str
    run_dir: Path


def train_folds(cfg: TrainConfig, reporter: Reporter, fold: int | None = None, all_folds: bool = False) -> Iterator[TrainedFold]:
    """`rockopt train`: FOLD (default: the config's), or every fold with ALL_FOLDS, one MLflow run
    each; yields each fold when it is done, the reporter's bars stopped."""
    if fold is not None and all_folds:
        raise ConfigError("--fold and --all-folds exclude each other")
    data, folds = prepare_data(cfg)
    if fold is not None:
        check_fold(folds, fold)
    reporter.line(
        f"{cfg.backbone} on {data.root} ({len(data)} images, {len(data.classes)} classes), "
        f"sampler {cfg.sampler_mode}, {cfg.epochs} epochs, folds file {folds.path}"
    )
    for k in range(folds.k) if all_folds else [cfg.fold if fold is None else fold]:
        with reporter:
            result, run_id, run_dir = train_tracked(cfg, data, folds, k, on_epoch=_epoch_lines(reporter, cfg.epochs), progress=reporter.bar())
        yield TrainedFold(k, result, run_id, run_dir)


def resume_tracked(path: str | Path, overrides: dict | None, reporter: Reporter) -> TrainedFold:
    """Continue a `rockopt train` run from PATH (its directory, or its `last.pt`) in the same
    MLflow run, with runtime settings from OVERRIDES. Everything that would refuse it is
    checked before the reporter says it continues."""
    run_dir, state = _saved_run(path)
    refused = sorted(k for k in overrides or {} if k not in RUNTIME_KEYS)
    if refused:
        raise ConfigError(f"--resume continues the saved settings; only runtime settings may change, not: {', '.join(refused)}")
    cfg = build_config({**state["config"], **(overrides or {})}, "--set")
    if state["epoch"] >= cfg.epochs:
        raise ConfigError(f"{run_dir}: the run already finished its {cfg.epochs} epochs; nothing to continue")
    run_id = state["meta"].get("mlflow_run_id")
    if not run_id:
        raise ConfigError(f"{run_dir / LAST}: names no MLflow run to continue")
    data, folds = prepare_data(cfg, state["meta"].get("folds_file"))
    reporter.line(f"continuing {run_dir} at epoch {state['epoch'] + 1}/{cfg.epochs}")
    with reporter, Run.reopen(run_id) as run:
        on_epoch = _epoch_lines(reporter, cfg.epochs)
        result = train_in_run(run, cfg, data, folds, state["fold"], run_dir, on_epoch=on_epoch, progress=reporter.bar(), resume=state)
    return TrainedFold(state["fold"], result, run.id, run_dir)


def _saved_run(path: str | Path) -> tuple[Path, dict]:
    """The run directory `--resume PATH` names, and its saved state: PATH is the directory or its `last.pt`."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"--resume {path}: no such directory (give a run directory or its {LAST})")
    if path.is_file() and path.name != LAST:
        raise ConfigError(f"--resume {path}: a file, not a run directory or its {LAST}")
    run_dir = path.parent if path.is_file() else path
    if not (run_dir / LAST).is_file() and not (run_dir / "config.yaml").is_file():  # a run writes its config first
        raise ConfigError(f"--resume {run_dir}: not the directory of a `rockopt train` run (no {LAST}, no config.yaml)")
    return run_dir, load_state(run_dir / LAST)


def _epoch_lines(reporter: Reporter, epochs: int) -> Callable[[EpochResult], None]:
    def show(res: EpochResult) -> None:
        reporter.line(
            f"epoch {res.epoch:>3}/{epochs}  train_loss {res.train_loss:.4f}  val_loss {res.val_loss:.4f}  "
            f"val_f1 {res.val_f1:.4f}  lr {res.lr:.2e}  {res.seconds:.1f}s  {res.images_per_s:.0f} img/s"
            + (f"  skipped {res.skipped}" if res.skipped else "")
        )

    return show


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
