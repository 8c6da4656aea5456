"""`rockopt train`: one configuration, one fold (or all), one MLflow run per fold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import ConfigOpt, DataOpt, ExtraSets, QuietOpt, SetOpt, console


def train(
    config: ConfigOpt = None,
    data: DataOpt = None,
    set_: SetOpt = None,
    extra: ExtraSets = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Fold to validate on (default: the config's).")] = None,
    all_folds: Annotated[bool, typer.Option("--all-folds", help="Train every fold in turn.")] = False,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue a run from RUN_DIR/last.pt, in its MLflow run (--set: runtime settings only).")
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train one configuration; log it to MLflow; keep the best checkpoint by validation macro-F1."""
    from rockopt.config import load_config, parse_sets
    from rockopt.errors import ConfigError
    from rockopt.tracked_run import check_fold, prepare_data, resume_tracked, train_tracked
    from rockopt.report import Reporter

    if fold is not None and all_folds:
        raise ConfigError("--fold and --all-folds exclude each other")
    overrides = parse_sets([*(set_ or []), *(extra or [])])
    out = console()
    reporter = Reporter(bars=not quiet)
    if resume is not None:
        if config is not None or data is not None or fold is not None or all_folds:
            raise ConfigError("--resume continues a saved run: --config, --data, --fold and --all-folds do not apply")
        from rockopt.train.checkpoints import LAST, load_state

        saved = load_state(resume / LAST)
        total = saved["config"]["epochs"]
        reporter.line(f"continuing {resume} at epoch {saved['epoch'] + 1}/{total}")
        with reporter:
            result, run_id, run_dir, _ = resume_tracked(resume, saved, overrides, on_epoch=lambda res: _show(reporter, res, total), progress=reporter.bar())
        _summary(out, saved["fold"], result, run_id, run_dir)
        return
    if data is not None:
        overrides["data"] = str(data)
    cfg = load_config(config, overrides)
    dataset, folds = prepare_data(cfg)
    if fold is not None:
        check_fold(folds, fold)
    todo = range(folds.k) if all_folds else [cfg.fold if fold is None else fold]
    reporter.line(
        f"{cfg.backbone} on {dataset.root} ({len(dataset)} images, {len(dataset.classes)} classes), "
        f"sampler {cfg.sampler_mode}, {cfg.epochs} epochs, folds file {folds.path}"
    )

    for k in todo:
        with reporter:
            result, run_id, run_dir = train_tracked(cfg, dataset, folds, k, on_epoch=lambda res: _show(reporter, res, cfg.epochs), progress=reporter.bar())
        _summary(out, k, result, run_id, run_dir)


def _show(reporter, res, epochs: int) -> None:
    reporter.line(
        f"epoch {res.epoch:>3}/{epochs}  train_loss {res.train_loss:.4f}  val_loss {res.val_loss:.4f}  "
        f"val_f1 {res.val_f1:.4f}  lr {res.lr:.2e}  {res.seconds:.1f}s  {res.images_per_s:.0f} img/s"
        + (f"  skipped {res.skipped}" if res.skipped else "")
    )


def _summary(out, fold: int, result, run_id: str, run_dir) -> None:
    out.print(
        f"fold {fold}: best val macro-F1 {result.best_f1:.4f} at epoch {result.best_epoch}  "
        f"run {run_id}  dir {run_dir}  images from {result.images}",
        highlight=False,
    )
