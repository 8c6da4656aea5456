"""`rockopt train`: one configuration, one fold (or all), one MLflow run per fold."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rockopt.cli._options import ConfigOpt, DataOpt, ExtraSets, QuietOpt, SetOpt, console

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
) -> None:
    """Train one configuration; log it to MLflow; keep the best checkpoint by validation macro-F1."""
    from rockopt.config import load_config, parse_sets
    from rockopt.errors import ConfigError
    from rockopt.report import Reporter
    from rockopt.tracked_run import resume_tracked, train_folds

    overrides = parse_sets([*(set_ or []), *(extra or [])])
    reporter = Reporter(bars=not quiet)
    if resume is not None:
        if config is not None or data is not None or fold is not None or all_folds:
            raise ConfigError("--resume continues a saved run: --config, --data, --fold and --all-folds do not apply")
        _summary(resume_tracked(resume, overrides, reporter))
        return
    if data is not None:
        overrides["data"] = str(data)
    for trained in train_folds(load_config(config, overrides), reporter, fold, all_folds):
        _summary(trained)


def _summary(t: TrainedFold) -> None:
    console().print(
        f"fold {t.fold}: best val macro-F1 {t.result.best_f1:.4f} at epoch {t.result.best_epoch}  "
        f"run {t.run_id}  dir {t.run_dir}  images from {t.result.images}",
        highlight=False,
    )
