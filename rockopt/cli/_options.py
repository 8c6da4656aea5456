"""Options used by several commands, defined once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from typer.core import TyperCommand, TyperGroup

DataOpt = Annotated[Path | None, typer.Option("--data", help="Data set directory (Dacon layout: train/<Class>/...).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML file of training settings.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a setting: --set key=value (repeatable; more key=value may follow)."),
]
ExtraSets = Annotated[list[str] | None, typer.Argument(help="More key=value settings.", show_default=False)]
STUDY_HELP = "Study name (studies/NAME.yaml) or a study file path."
StudyOpt = Annotated[str, typer.Option("--study", help=STUDY_HELP)]
OptionalStudyOpt = Annotated[str | None, typer.Option("--study", help=STUDY_HELP)]  # a command that works without one too
StorageOpt = Annotated[
    str | None,
    typer.Option("--storage", envvar="ROCKOPT_STORAGE", show_envvar=True, help="Optuna storage URL (default: sqlite:///studies/NAME.db)."),
]
StudyNameOpt = Annotated[str | None, typer.Option("--study-name", help="Name in the storage (default: the file's name).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
Tta = Literal["none", "flip", "d4"]  # the names of transforms.TTA_SETS (a test ties them)
TtaOpt = Annotated[Tta, typer.Option("--tta", help="Test-time augmentation: the mean of the model over these views.")]

RegisterOpt = Annotated[
    str | None, typer.Option("--register", help="Also log it as an MLflow model and register it as a new version of this name.")
]
AliasOpt = Annotated[str, typer.Option("--alias", help="With --register: the alias moved onto the new version.")]


def console(stderr: bool = False):
    """Results on stdout, messages on stderr; wide when piped, so lines and tables stay whole."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=True, width=None if stream.isatty() else 200)


def _untyped_flags(params: list) -> list:
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""  # typer's rich help shows an option's metavar in place of its type
    return params


class Command(TyperCommand):
    """A command whose help shows no type beside a flag: typer's rich help writes `<bool>` beside
    every flag (--help too), as if it took a value. Give it as `cls=` to every command."""

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))


class Group(TyperGroup):
    """A command group whose help shows no type beside a flag, as `Command`."""

    def get_params(self, ctx):
        return _untyped_flags(super().get_params(ctx))
