"""The `rockopt` command: wires the command groups; each lives in its own module."""

from __future__ import annotations

import os
import sys

import typer

from rockopt.cli import data, demo, ensemble, search, train, ui
from rockopt.errors import RockoptError

app = typer.Typer(
    name="rockopt",
    help="Find the best way to train a rock-type classifier, and blend the best models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.command("train")(train.train)
app.command("search")(search.search)
app.command("best")(search.best)
app.command("doctor")(search.doctor)
app.command("cv")(ensemble.cv)
app.command("predict")(ensemble.predict)
app.command("blend")(ensemble.blend)
app.command("demo")(demo.demo)
app.command("ui")(ui.ui)


def main(argv: list[str] | None = None) -> None:
    """Entry point. A RockoptError becomes one line on stderr and exit code 2 (ROCKOPT_DEBUG=1 shows the traceback)."""
    try:
        app(args=argv, prog_name="rockopt")
    except RockoptError as e:
        if os.environ.get("ROCKOPT_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
