"""What pruning buys: one study run with its pruner and with pruning off, same seed and trials.

Prints, for each run, the epochs trained over all trials, the best validation macro-F1 and
the wall time. Goal: with the pruner, the best value within 1 point of the unpruned run's,
for at most a third of its epochs.

    python benchmarks/pruning.py [--study benchmarks/pruning.yaml] [--n-trials N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from _common import machine, work_dir

HERE = Path(__file__).resolve().parent


def _variant(src: Path, pruner: dict | None, out: Path) -> Path:
    """The study file with its relative paths made absolute and, when given, another pruner."""
    spec = yaml.safe_load(src.read_text())
    data = spec.get("data", {})
    if data.get("path"):
        data["path"] = str((src.parent / data["path"]).resolve())
    fixed = spec.get("fixed", {})
    if fixed.get("pretrained_file"):
        fixed["pretrained_file"] = str((src.parent / fixed["pretrained_file"]).resolve())
    if pruner is not None:
        spec["pruner"] = pruner
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", type=Path, default=HERE / "pruning.yaml")
    ap.add_argument("--data", type=Path, default=None, help="data set (default: the study file's)")
    ap.add_argument("--n-trials", type=int, default=None, help="default: the study file's budget")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-pruning"))
    a = ap.parse_args()

    import optuna

    work = work_dir(a.work)
    from rockopt.search.runner import run_search

    print(f"machine: {machine()}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    rows = []
    for label, pruner in (("with its pruner", None), ("pruning off", {"name": "none"})):
        name = f"bench-pruning-{'on' if pruner is None else 'off'}-{stamp}"
        study_file = _variant(a.study.resolve(), pruner, work / f"{name}.yaml")
        storage = f"sqlite:///{work / 'studies.db'}"
        t0 = time.perf_counter()
        run_search(study_file, data=a.data, n_trials=a.n_trials, storage=storage, study_name=name, progress=False, overrides={"out_dir": str(work)})
        seconds = time.perf_counter() - t0
        study = optuna.load_study(study_name=name, storage=storage)
        trials = study.get_trials(deepcopy=False)
        epochs = sum(len(t.intermediate_values) for t in trials)
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
        rows.append((label, yaml.safe_load(study_file.read_text())["pruner"], len(trials), pruned, epochs, study.best_value, seconds))
        print(f"{label}: {len(trials)} trials, {pruned} pruned, {epochs} epochs, best {study.best_value:.4f}, {seconds:.0f} s", flush=True)
    print()
    print("| run | pruner | trials | pruned | epochs trained | best val macro-F1 | wall time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, pruner, n, pruned, epochs, best, seconds in rows:
        p = ", ".join(f"{k}={v}" for k, v in pruner.items() if k != "name")
        print(f"| {label} | {pruner['name']}{f' ({p})' if p else ''} | {n} | {pruned} | {epochs} | {best:.4f} | {seconds / 60:.1f} min |")
    (_, _, _, _, e_on, b_on, _), (_, _, _, _, e_off, b_off, _) = rows
    print(
        f"\nepochs with the pruner / without: {e_on / e_off:.2f} (goal <= 0.33); "
        f"best value difference: {100 * (b_on - b_off):+.1f} points (goal >= -1.0)"
    )


if __name__ == "__main__":
    main()
