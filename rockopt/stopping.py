"""Ctrl-C and SIGTERM stop a command the same way.

SIGTERM is what `timeout`, `kill`, `docker stop`, systemd and a batch scheduler's preemption
send. Python's default for it ends the process on the spot: MLflow runs and Optuna trials
would stay RUNNING until `doctor` or the next search finds the dead worker. Here it raises
KeyboardInterrupt like Ctrl-C, so every command's Ctrl-C path runs (runs end KILLED, a trial
is failed and queued again to continue from its last epoch), and the process then ends by
SIGTERM, as `kill` expects (exit status 143 in a shell).

A command stopped by Ctrl-C, or whose reader went away (`rockopt best | head -1`), ends the
way any Unix program does then: killed by that signal, so a shell loop, `make` or a script
that ran it sees it and stops too (`on_devnull`, `reader_gone`, `end_by_signal`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOPPING = (signal.SIGINT, signal.SIGTERM)
# a terminal sends Ctrl-C to every process of its group and the `--workers` launcher forwards
# what it gets to its workers: a worker may get one stop twice at once, and the second must not
# break the clean-up the first started; a signal later than this is a new request, and raises
SAME_STOP_S = 1.0
_received: list[tuple[int, float]] = []  # (signal, monotonic time) of each stopping signal, in order


def received() -> int | None:
    """The first stopping signal this process got, or None."""
    return _received[0][0] if _received else None


def _raise(signum: int, frame) -> None:
    now = time.monotonic()
    repeated = bool(_received) and now - _received[0][1] < SAME_STOP_S
    _received.append((signum, now))
    if not repeated:
        raise KeyboardInterrupt


def install() -> None:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt, and are remembered (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for sig in STOPPING:
            signal.signal(sig, _raise)


@contextmanager
def remembered() -> Iterator[Callable[[], bool]]:
    """Stopping signals raise KeyboardInterrupt inside; yields "was one received since?".
    Some imports swallow a KeyboardInterrupt raised inside them (torch's first lazy import of
    triton does): a loop that asks this at each step stops anyway."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _raise) for sig in STOPPING}
    already = len(_received)
    try:
        yield lambda: len(_received) > already
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def die_by(sig: int) -> None:
    """End this process by SIG, as an uncaught one would (its default action), after writing out
    what stdout and stderr still hold (a reader that went away loses it)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


def on_devnull() -> set[int]:
    """Which of stdout (1) and stderr (2) write to /dev/null."""
    null = os.stat(os.devnull)
    out = set()
    for fd in (1, 2):
        try:
            if os.path.samestat(os.fstat(fd), null):
                out.add(fd)
        except OSError:
            pass
    return out


def reader_gone(at_start: set[int]) -> bool:
    """Whether a write found its pipe closed (EPIPE), AT_START being `on_devnull()` then. Rich and
    rockopt's own output then point the stream at /dev/null (and exit 1 for rich); typer and
    click wrap the streams in a PacifyFlushWrapper (by name: click 8.5 renamed the class, typer
    uses the old name)."""
    wrapped = any(type(s).__name__.lstrip("_") == "PacifyFlushWrapper" for s in (sys.stdout, sys.stderr))
    return wrapped or bool(on_devnull() - at_start)


def end_by_signal() -> None:
    """End a stopped command by the signal that stopped it: SIGTERM's default action, or, for
    Ctrl-C, a KeyboardInterrupt nobody catches, which Python ends by SIGINT after its exit
    handlers and flushes, without a traceback."""
    if received() == signal.SIGTERM:
        die_by(signal.SIGTERM)
    sys.excepthook = no_traceback_for_ctrl_c
    raise KeyboardInterrupt from None


def no_traceback_for_ctrl_c(kind, value, tb) -> None:
    """An excepthook: a KeyboardInterrupt ends the process silently, anything else as usual."""
    if not issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
