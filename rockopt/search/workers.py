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


def split_trials(n_trials: int, workers: int) -> list[int]:
    """N trials over W workers, as evenly as possible, so the total is exactly N."""
    return [n_trials // workers + (1 if i < n_trials % workers else 0) for i in range(workers)]


def launch(args: list[str], n_trials: int, workers: int, gpus: list[str] | None) -> int:
    """Run `rockopt search ARGS --n-trials k` in W processes; the worst exit code wins."""
    procs = []
    for i, k in enumerate(split_trials(n_trials, workers)):
        if k == 0:
            continue
        env = {**os.environ, "ROCKOPT_WORKER": str(i)}
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        cmd = [sys.executable, "-m", "rockopt", "search", *args, "--n-trials", str(k), "--workers", "1"]
        procs.append(subprocess.Popen(cmd, env=env))
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:
        # the terminal sent SIGINT to every worker too; give them time to close their trials
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        codes = [p.wait() for p in procs]
        return 130
    return max(codes, default=0)
