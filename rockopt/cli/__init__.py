"""The `rockopt` command: wires the command groups; each lives in its own module."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated

import typer

from rockopt import stopping
from rockopt.cli import blend, cv, data, demo, predict, search, train, ui
from rockopt.cli._options import Command, Group
from rockopt.errors import RockoptError

app = typer.Typer(
    name="rockopt",
    cls=Group,
    help="Find the best way to train a rock-type classifier, and blend the best models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        import rockopt

        print(f"rockopt {rockopt.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri", envvar="MLFLOW_TRACKING_URI", show_envvar=True,
            help="MLflow store or server for every run (default: sqlite:///mlruns/mlflow.db).",
        ),
    ] = None,
) -> None:
    """Find the best way to train a rock-type classifier, and blend the best models."""
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # MLflow's own variable: every command and process reads it


app.add_typer(data.app, name="data")
app.command("train", cls=Command)(train.train)
app.command("search", cls=Command)(search.search)
app.command("best", cls=Command)(search.best)
app.command("doctor", cls=Command)(search.doctor)
app.command("cv", cls=Command)(cv.cv)
app.command("predict", cls=Command)(predict.predict)
app.command("blend", cls=Command)(blend.blend)
app.command("demo", cls=Command)(demo.demo)
app.command("ui", cls=Command)(ui.ui)


SET_FLAGS = ("--set", "-s")


def expand_sets(argv: list[str]) -> list[str]:
    """`--set a=1 b=2 --set a=3` -> `--set a=1 --set b=2 --set a=3`.

    Click collects repeated options apart from trailing words, so `key=value` words after a
    `--set` would be read after every flag: expanding them keeps the order as typed, and the
    last value of a key wins.
    """
    out: list[str] = []
    chained = False
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in SET_FLAGS and i + 1 < len(argv):
            out += ["--set", argv[i + 1]]
            chained, i = True, i + 2
            continue
        if word.startswith("--set="):
            out += ["--set", word.removeprefix("--set=")]
            chained, i = True, i + 1
            continue
        if chained and "=" in word and not word.startswith("-"):
            out += ["--set", word]
        else:
            chained = False
            out.append(word)
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point. A RockoptError becomes one line on stderr and exit code 2 (ROCKOPT_DEBUG=1 shows the traceback)."""
    from rockopt.report import log_to_stderr

    log_to_stderr()
    try:
        app(args=expand_sets(sys.argv[1:] if argv is None else list(argv)), prog_name="rockopt")
    except RockoptError as e:
        if os.environ.get("ROCKOPT_DEBUG"):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run() -> None:
    """The `rockopt` program. A command stopped by Ctrl-C (exit code 130) ends the way any Unix
    program stopped by Ctrl-C does: killed by SIGINT, so the shell loop, `make` or script that
    ran it stops too. Python ends that way for a KeyboardInterrupt nobody caught, after its exit
    handlers and flushes; exiting 130 instead would make it depend on where the interrupt landed
    (one landing in code a library builds with exec() already does it). SIGTERM stops a command
    as Ctrl-C does (rockopt.stopping), and it then ends killed by SIGTERM."""
    stopping.install()
    devnull = stopping.on_devnull()
    try:
        main()
    except SystemExit as e:
        if e.code == 1 and stopping.reader_gone(devnull):
            # `rockopt best | head -1`: end as any Unix program whose reader went away, by
            # SIGPIPE (141 in a shell), not with an exit code that means a failed command
            stopping.die_by(signal.SIGPIPE)
        if e.code != 130 and stopping.received() is None:
            raise
        stopping.end_by_signal()
    except KeyboardInterrupt:
        stopping.end_by_signal()
