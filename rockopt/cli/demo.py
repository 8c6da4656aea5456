"""`rockopt demo`: the whole path on a laptop CPU in about a minute, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import DataOpt, QuietOpt


def demo(
    data: DataOpt = None,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs"),
    quiet: QuietOpt = False,
) -> None:
    """Check a data set (generated when --data is not given) and train a tiny model on it, tracked in MLflow."""
    from rockopt.cli import data as data_cmd
    from rockopt.cli import train as train_cmd
    from rockopt.data.synthetic import make_demo_data

    if data is None:
        data = out / "demo-data"
        if not (data / "train").is_dir():
            make_demo_data(data)
    try:
        data_cmd.check(data=data, workers=None, quiet=quiet)
    except typer.Exit as e:
        if e.exit_code:
            raise
    train_cmd.train(
        data=data,
        set_=[
            "backbone=test_efficientnet",
            "pretrained=false",
            "image_size=64",
            "epochs=3",
            "batch_size=16",
            "lr=0.003",
            "experiment=rockopt-demo",
            f"out_dir={out}",
        ],
        quiet=quiet,
    )
