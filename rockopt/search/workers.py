"""`rockopt search --workers N [--gpus 0,1,...]`: N worker processes on this host, one study.

Each worker is the same `rockopt search` command with one worker: its own process, its own
MLflow parent run, the same storage. Optuna's storage is the only coordination: workers on
other hosts join by running the same command with the same --storage and study name.
A worker stops, as on SIGTERM, when its launcher is gone, even one killed outright.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from rockopt import stopping
from rockopt.errors import ConfigError
from rockopt.search.doctor import examine
from rockopt.search.request import WORKER_ENV, SearchRequest
from rockopt.search.storage import describe_storage
from rockopt.search.study import create_tables
from rockopt.tracking import experiment_id

LAUNCHER_ENV = "ROCKOPT_LAUNCHER"  # the launcher's pid, in each worker's environment
STORAGE_ENV = "ROCKOPT_STORAGE"  # what `--storage` reads: a password never shows in `ps`


def launch_workers(request: SearchRequest, workers: int, gpus: list[str] | None, say: Callable[[str], None]) -> int:
    """Run REQUEST in W worker processes (one per GPU with GPUS); SAY tells the user what happens.

    The storage's tables and the MLflow experiment are created once, before the workers race
    for them. Trials and runs that a worker killed by a signal left RUNNING are repaired. Returns
    the exit code: the worst of the workers'.
    """
    if request.trials is None:  # a budget of time only: there are no trials to split
        raise ConfigError(f"--workers {workers}: {request.source} sets no budget.n_trials; pass --n-trials N")
    create_tables(request.url, request.name)
    experiment_id(request.name)  # the same for the MLflow store and the study's experiment
    say(f"{workers} workers on study {request.name} ({describe_storage(request.url)}), {request.trials} trials")
    code, died = launch(worker_args(request), request.trials, workers, gpus, env={STORAGE_ENV: request.url})
    if died:
        for worker, pid, sig in died:
            say(f"worker {worker} (pid {pid}) was killed by {sig}")
        d = examine(request.study, request.url, request.name, fix=True)
        say(
            f"its trials were marked FAIL and queued again ({len(d.stuck_trials)}), its MLflow runs ended KILLED "
            f"({len(d.stuck_runs)}); run the same command again to continue the study"
        )
    return code


def worker_args(request: SearchRequest) -> list[str]:
    """The `rockopt search` arguments of each worker (the storage travels in the environment)."""
    args = ["--study", str(request.study), "--study-name", request.name, "-q"]
    if request.data is not None:
        args += ["--data", str(request.data)]
    if request.timeout is not None:
        args += ["--timeout", str(request.timeout)]
    for key, value in request.overrides.items():
        args += ["--set", f"{key}={json.dumps(value, default=str)}"]  # JSON is YAML: read back the same
    return args


def split_trials(n_trials: int, workers: int) -> list[int]:
    """N trials over W workers, as evenly as possible, so the total is exactly N."""
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def launch(
    args: list[str], n_trials: int, workers: int, gpus: list[str] | None, env: dict[str, str] | None = None
) -> tuple[int, list[tuple[int, int, str]]]:
    """Run `rockopt search ARGS --n-trials k` in W processes, with ENV added to this one's.

    Returns the exit code (the worst of the workers'; a worker killed by a signal counts as
    128 + its number, as a shell reports it) and, per worker killed by a signal, (worker
    number, pid, signal name).
    """
    procs: list[tuple[int, subprocess.Popen]] = []
    for i, k in enumerate(split_trials(n_trials, workers)):
        if k == 0:
            continue
        worker_env = {**os.environ, **(env or {}), WORKER_ENV: str(i), LAUNCHER_ENV: str(os.getpid())}
        if gpus:
            worker_env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        cmd = [sys.executable, "-m", "rockopt", "search", *args, "--n-trials", str(k), "--workers", "1"]
        procs.append((i, subprocess.Popen(cmd, env=worker_env)))
    try:
        codes = [p.wait() for _, p in procs]
    except KeyboardInterrupt:
        # pass the stop on (a terminal's Ctrl-C reached them too: they take it as one), and
        # let them close their trials and runs
        sig = stopping.received() or signal.SIGINT
        for _, p in procs:
            if p.poll() is None:
                p.send_signal(sig)
        for _, p in procs:
            p.wait()
        return 128 + sig, []
    died = [(i, p.pid, _signal_name(-p.returncode)) for i, p in procs if p.returncode < 0]
    return max((128 - c if c < 0 else c for c in codes), default=0), died


def follow_launcher(poll_s: float = 1.0) -> None:
    """In a worker the launcher started: SIGTERM to this process once the launcher is gone
    (killed, even by SIGKILL, which it cannot pass on), so the worker stops as on SIGTERM: its
    trial ends interrupted and is queued again, its runs end KILLED. A watch of the parent's pid
    (any POSIX system): a gone parent's children are given to another process."""
    launcher = os.environ.get(LAUNCHER_ENV, "")
    if not launcher.isdigit():
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="rockopt-launcher-watch", daemon=True).start()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
