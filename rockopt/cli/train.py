"""`rockopt train`: one configuration, one fold (or all), one MLflow run per fold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rockopt.cli._options import AliasOpt, ConfigOpt, DataOpt, ExtraSets, QuietOpt, RegisterOpt, SetOpt, console

if TYPE_CHECKING:
    from rockopt.tracked_run import TrainedFold


def train(
    config: ConfigOpt = None,
    data: DataOpt = None,
    set_: SetOpt = None,
    extra: ExtraSets = None,
    fold: Annotated[int | None, typer.Option("--fold", help="Fold to validate on (default: the config's).")] = None,
    all_folds: Annotated[bool, typer.Option("--all-folds", help="Train every fold in turn.")] = False,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in RUN_DIR (or from its last.pt) in its MLflow run (--set: runtime settings only).")
    ] = None,
    quiet: QuietOpt = False,
    log_model: Annotated[bool, typer.Option("--log-model", help="Log the best checkpoint as an MLflow model of its run (TTA none).")] = False,
    register: RegisterOpt = None,
    alias: AliasOpt = "champion",
) -> None:
    """Train one configuration; log it to MLflow; keep the best checkpoint by validation macro-F1."""
    from rockopt.config import load_config, parse_sets
    from rockopt.errors import ConfigError
    from rockopt.model_registry import check_registration
    from rockopt.report import Reporter
    from rockopt.tracked_run import resume_tracked, train_folds

    check_registration(register, alias)  # before a minute of training
    log_model = log_model or register is not None
    overrides = parse_sets([*(set_ or []), *(extra or [])])
    reporter = Reporter(bars=not quiet)
    if resume is not None:
        if config is not None or data is not None or fold is not None or all_folds:
            raise ConfigError("--resume continues a saved run: --config, --data, --fold and --all-folds do not apply")
        _summary(resume_tracked(resume, overrides, reporter), log_model, register, alias)
        return
    if data is not None:
        overrides["data"] = str(data)
    cfg = load_config(config, overrides)
    if log_model and not cfg.save_checkpoint:
        raise ConfigError("--log-model logs the best checkpoint: it needs save_checkpoint: true")
    for trained in train_folds(cfg, reporter, fold, all_folds):
        _summary(trained, log_model, register, alias)


def _summary(t: TrainedFold, log_model: bool = False, register: str | None = None, alias: str = "champion") -> None:
    out = console()
    out.print(
        f"fold {t.fold}: best val macro-F1 {t.result.best_f1:.4f} at epoch {t.result.best_epoch}  "
        f"run {t.run_id}  dir {t.run_dir}  images from {t.result.images}",
        highlight=False,
    )
    if log_model:
        from rockopt.model_registry import log_run_checkpoint

        m = log_run_checkpoint(t.run_id, t.run_dir / "best.pt", t.result.best_epoch, register, alias)
        where = f", registered as {m.name} version {m.version}: {m.registered_uri}" if m.name else ""
        out.print(f"fold {t.fold}: logged model {m.model_uri} ({m.size_bytes / 1e6:.1f} MB) of run {t.run_id}{where}", highlight=False)
