"""`rockopt search --workers N [--gpus 0,1,...]`: N worker processes on this host, one study.

Each worker is the same `rockopt search` command with one worker: its own process, its own
MLflow parent run, the same storage. Optuna's storage is the only coordination: workers on
other hosts join by running the same command with the same --storage and study name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from rockopt import stopping


def split_trials(n_trials: int, workers: int) -> list[int]:
    """N trials over W workers, as evenly as possible, so the total is exactly N."""
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def launch(args: list[str], n_trials: int, workers: int, gpus: list[str] | None) -> tuple[int, list[tuple[int, int, str]]]:
    """Run `rockopt search ARGS --n-trials k` in W processes.

    Returns the exit code (the worst of the workers'; a worker killed by a signal counts as
    128 + its number, as a shell reports it) and, per worker killed by a signal, (worker
    number, pid, signal name).
    """
    procs: list[tuple[int, subprocess.Popen]] = []
    for i, k in enumerate(split_trials(n_trials, workers)):
        if k == 0:
            continue
        env = {**os.environ, "ROCKOPT_WORKER": str(i)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        cmd = [sys.executable, "-m", "rockopt", "search", *args, "--n-trials", str(k), "--workers", "1"]
        procs.append((i, subprocess.Popen(cmd, env=env)))
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


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
