"""Does a long search leak? N trials in one process; the peak resident memory (RSS) of the
search process during each trial, the last against the first. Goal: growth <= 10 %.

RSS is sampled every 20 ms by a thread and attributed to trials by Optuna's start and
complete times. Loader workers are separate processes and not counted (they end with
their trial).

    python benchmarks/memory.py [--n-trials 20] [--data ../shared/data/rock25]
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path

import yaml

from _common import machine, work_dir

HERE = Path(__file__).resolve().parent


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Sampler(threading.Thread):
    def __init__(self, every: float = 0.02):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.time(), rss_mib()))
            time.sleep(self.every)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "rock25")
    ap.add_argument("--n-trials", type=int, default=20)
    ap.add_argument("--work", type=Path, default=Path("runs/bench-memory"))
    a = ap.parse_args()
    work = work_dir(a.work)

    import optuna

    from rockopt.search.runner import run_search

    # one model, so trial peaks compare; the recipe (sampler, schedule, augmentation) varies
    spec = {
        "data": {"path": str(a.data.resolve()), "folds": 5, "fold": 0, "image_size": 96},
        "budget": {"n_trials": a.n_trials, "max_epochs": 1, "keep_checkpoints": 2},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "fixed": {"backbone": "tf_efficientnet_lite0", "pretrained": False, "batch_size": 16, "cache": "off"},
        "space": {
            "sampler_mode": ["uniform", "balanced", "hnm"],
            "lr": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True},
            "label_smoothing": {"type": "float", "low": 0.0, "high": 0.15},
            "scheduler": ["cosine", "onecycle", "step"],
            "augment": ["seed", "light"],
        },
    }
    study_file = work / "memory.yaml"
    study_file.write_text(yaml.safe_dump(spec))
    storage = f"sqlite:///{work / 'studies.db'}"
    name = f"memory-{time.strftime('%Y%m%d-%H%M%S')}"
    print(f"machine: {machine()}")
    sampler = Sampler()
    sampler.start()
    t0 = time.time()
    run_search(study_file, n_trials=a.n_trials, storage=storage, study_name=name, progress=False, overrides={"out_dir": str(work)})
    sampler.stop.set()
    sampler.join()
    trials = optuna.load_study(study_name=name, storage=storage).trials
    peaks = []
    for t in trials:
        lo, hi = t.datetime_start.timestamp(), t.datetime_complete.timestamp()
        inside = [r for ts, r in sampler.samples if lo <= ts <= hi]
        peaks.append(max(inside) if inside else float("nan"))
        print(f"trial {t.number:>2} {t.state.name:8s} {t.params['sampler_mode']:9s} peak RSS {peaks[-1]:7.1f} MiB", flush=True)
    print(f"\n{len(trials)} trials in {time.time() - t0:.0f} s; process peak RSS {max(r for _, r in sampler.samples):.0f} MiB")
    first, last = peaks[0], peaks[-1]
    print(f"peak RSS: first trial {first:.0f} MiB, last trial {last:.0f} MiB: growth {100 * (last / first - 1):+.1f} % (goal <= 10 %)")
    print(f"largest trial peak {max(peaks):.0f} MiB ({100 * (max(peaks) / first - 1):+.1f} % over the first)")


if __name__ == "__main__":
    main()
