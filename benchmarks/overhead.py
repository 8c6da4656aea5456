"""What rockopt's bookkeeping costs: one configuration trained as a search trial (Optuna,
MLflow params and per-epoch metrics, checkpoint, result files, progress bars) against the
same loop (`fit`) with all of that off. Runs alternate, the fastest of each kind counts.
Goal: wall-time ratio <= 1.03.

    python benchmarks/overhead.py [--data ../shared/data/rock25] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from _common import machine, work_dir

HERE = Path(__file__).resolve().parent
SETTINGS = {
    "backbone": "tf_efficientnet_lite0",
    "pretrained": False,
    "image_size": 96,
    "batch_size": 16,
    "epochs": 3,
    "sampler_mode": "hnm",
    "cache": "off",
}


def bare(data: Path, work: Path) -> float:
    from rockopt.config import TrainConfig
    from rockopt.data.folds import load_or_create_folds
    from rockopt.data.layout import scan_train
    from rockopt.data.split import make_split
    from rockopt.train.engine import fit

    cfg = TrainConfig(data=str(data), save_checkpoint=False, **SETTINGS)
    ts = scan_train(data)
    split = make_split(ts, load_or_create_folds(ts, work / "folds.csv", 5, 42), 0)
    t0 = time.perf_counter()
    fit(cfg, split, progress=False)
    return time.perf_counter() - t0


def as_trial(data: Path, work: Path, k: int) -> tuple[float, float]:
    """Seconds of the whole `search` call and of its one trial (Optuna's start to complete)."""
    import optuna

    from rockopt.search.runner import run_search

    spec = {
        "data": {"path": str(data), "folds": 5, "fold": 0, "image_size": SETTINGS["image_size"]},
        "budget": {"n_trials": 1, "max_epochs": SETTINGS["epochs"], "keep_checkpoints": 1},
        "pruner": {"name": "none"},
        "fixed": {k_: v for k_, v in SETTINGS.items() if k_ not in ("epochs", "image_size")},
    }
    study_file = work / f"overhead-{k}.yaml"
    study_file.write_text(yaml.safe_dump(spec))
    storage = f"sqlite:///{work / 'studies.db'}"
    name = f"overhead-{time.strftime('%H%M%S')}-{k}"
    t0 = time.perf_counter()
    run_search(study_file, n_trials=1, storage=storage, study_name=name, progress=True, overrides={"out_dir": str(work)})
    total = time.perf_counter() - t0
    t = optuna.load_study(study_name=name, storage=storage).trials[0]
    return total, (t.datetime_complete - t.datetime_start).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "rock25")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("runs/bench-overhead"))
    a = ap.parse_args()
    work = work_dir(a.work)
    data = a.data.resolve()
    print(f"machine: {machine()}")
    print(f"configuration: {SETTINGS} on {data}, fold 0")
    bare(data, work)  # warm-up: imports, page cache, the folds file
    plain, search, trial = [], [], []
    for k in range(a.repeats):
        plain.append(bare(data, work))
        s, t = as_trial(data, work, k)
        search.append(s)
        trial.append(t)
        print(f"round {k + 1}: loop alone {plain[-1]:.1f} s, as a trial {trial[-1]:.1f} s, whole search call {search[-1]:.1f} s", flush=True)
    p, t, s = min(plain), min(trial), min(search)
    print()
    print("| run | wall time | ratio to the loop alone |")
    print("| --- | --- | --- |")
    print(f"| loop alone (`fit`, no tracking, no progress, no checkpoint) | {p:.1f} s | 1.00 |")
    print(f"| the same configuration as a search trial | {t:.1f} s | {t / p:.3f} |")
    print(f"| the whole `search` call (study, parent run, plots) | {s:.1f} s | {s / p:.3f} |")
    print(f"\ntrial / loop alone: {t / p:.3f} (goal <= 1.03)")


if __name__ == "__main__":
    main()
