"""Options used by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data set directory (Dacon layout: train/<Class>/...).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of training settings.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a setting: --set key=value (repeatable; more key=value may follow)."),
]
ExtraSets = Annotated[list[str] | None, typer.Argument(help="More key=value settings.", show_default=False)]
StudyOpt = Annotated[str, typer.Option("--study", help="Study name (studies/NAME.yaml) or a study file path.")]
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", envvar="ROCKOPT_STORAGE", show_envvar=True, help="Optuna storage URL (default: sqlite:///studies/NAME.db)."),
]
StudyNameOpt = Annotated[str | None, typer.Option("--study-name", help="Name in the storage (default: the file's name).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Tta = Literal["none", "flip", "d4"]  # the names of transforms.TTA_SETS (a test ties them)
TtaOpt = Annotated[Tta, typer.Option("--tta", help="Test-time augmentation: the mean of the model over these views.")]


def console(stderr: bool = False):
    """Results on stdout, messages on stderr; wide when piped, so lines and tables stay whole."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=True, width=None if stream.isatty() else 200)
