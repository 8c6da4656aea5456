"""What a long command tells the user while it runs.

On a terminal: rich progress bars, with event lines printed above them. Anywhere else (a
pipe, `| tee`, a batch job's log file): no bars, one timestamped line per event, so the
log shows every trial and every epoch as it happens. A reader that went away (`| head`, a
`tee` stopped by the same Ctrl-C) never stops the job: what it would have read is dropped.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO, Any


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


def _drop_output(stream: IO[str]) -> None:
    """Point STREAM's file descriptor at /dev/null: the interpreter's last flush must not fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def safe_print(text: str, err: bool = False) -> None:
    """One line on stdout (results) or stderr (messages); nothing happens if the reader is gone."""
    stream = sys.stderr if err else sys.stdout
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        _drop_output(stream)
    except ValueError:  # closed stream
        pass


def short(value: Any) -> str:
    """A parameter value for a log line: floats in 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={short(v)}" for k, v in params.items())


def duration(seconds: float) -> str:
    seconds = int(round(max(seconds, 0)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def progress_display(enabled: bool = True, transient: bool = True):
    """A rich progress display on stderr; a search shares one between its trial bar and the epochs."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True, soft_wrap=True),
        transient=transient,
        disable=not enabled,
    )


class Reporter:
    """Event lines, and progress bars where stderr is a terminal.

    `bars=False` (`--quiet`) keeps the lines and drops the bars. `prefix` marks the lines of
    one worker among several writing to the same terminal.
    """

    def __init__(self, bars: bool = True, prefix: str = "", transient: bool = False):
        self.terminal = is_terminal(sys.stderr)
        self.prefix = prefix
        self.progress = progress_display(True, transient=transient) if bars and self.terminal else None

    def line(self, text: str) -> None:
        text = self.prefix + text
        if self.progress is not None and self.progress.live.is_started:
            try:
                self.progress.console.print(text, highlight=False, markup=False)
            except BrokenPipeError:
                _drop_output(sys.stderr)
            return
        safe_print(stamped(text), err=True)

    def bar(self):
        """What the training loop takes as `progress`: the shared display, or False for none."""
        return self.progress if self.progress is not None else False

    def __enter__(self) -> Reporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            try:
                self.progress.stop()
            except BrokenPipeError:
                _drop_output(sys.stderr)


def next_step(*commands: str) -> None:
    """What to run next, on stderr (a log line like the others where stderr is not a terminal)."""
    reporter = Reporter(bars=False)
    for i, command in enumerate(commands):
        reporter.line(("next: " if i == 0 else "      ") + command)


def stamped(text: str) -> str:
    """TEXT, after the time where stderr is not a terminal (a log file, `| tee`)."""
    return text if is_terminal(sys.stderr) else time.strftime("%Y-%m-%d %H:%M:%S ") + text


class _StderrLog(logging.Handler):
    """Log records as event lines: to sys.stderr as it is when written, stamped as they are."""

    def emit(self, record: logging.LogRecord) -> None:
        safe_print(stamped(self.format(record)), err=True)


def log_to_stderr() -> None:
    """rockopt's warnings (e.g. an unreadable image a loader worker skips) on stderr, stamped
    like the event lines; loader workers forked later inherit it."""
    logger = logging.getLogger("rockopt")
    if logger.handlers:
        return
    logger.addHandler(_StderrLog())
    logger.setLevel(logging.WARNING)
    logger.propagate = False
