"""A CPU user's epoch on rock25 at 224 px: reading the photographs vs. reading the image cache.

Trains one epoch of the same configuration (fold 0) with `cache=off` (every photo decoded
and resized in every epoch, as without a cache) and from a cache at 256 px, alternating,
--repeats times each; prints the fastest run of each kind: the training part's images/s
and the epoch's wall time (training and validation).

    python benchmarks/cpu_epoch.py [--data ../shared/data/rock25] [--image-size 224] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import machine

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "data" / "rock25")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--cache-size", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backbone", default="tf_efficientnet_lite0")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-cpu-epoch"))
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROCKOPT_CACHE_DIR", str((a.work / "cache").resolve()))

    from rockopt.config import TrainConfig
    from rockopt.data.cache import build_cache
    from rockopt.data.folds import load_or_create_folds
    from rockopt.data.layout import scan_train
    from rockopt.data.split import make_split
    from rockopt.train.engine import fit
    from rockopt.train.inference import resolve_workers

    data = a.data.resolve()
    ts = scan_train(data)
    split = make_split(ts, load_or_create_folds(ts, a.work / "folds.csv", 5, 42), 0)
    print(f"machine: {machine()}")
    print(f"{data}: {len(split.train_paths)} training, {len(split.val_paths)} validation images; "
          f"{a.backbone} at {a.image_size} px, batch 32, seed augmentations, {resolve_workers(None)} loader workers")
    r = build_cache(data, a.cache_size, progress=False)
    print(f"image cache at {a.cache_size} px: {'built in ' + format(r.seconds, '.1f') + ' s' if r.built else 'found'} ({len(r.cache)} images)")
    runs: dict[str, list[tuple[float, float]]] = {}
    for k in range(a.repeats):
        for label, cache in (("photographs (cache off)", "off"), (f"image cache, {a.cache_size} px", "auto")):
            cfg = TrainConfig(
                data=str(data), backbone=a.backbone, pretrained=False, image_size=a.image_size, batch_size=32,
                epochs=a.epochs, save_checkpoint=False, cache=cache, cache_size=a.cache_size if cache != "off" else None,
            )
            t0 = time.perf_counter()
            res = fit(cfg, split, progress=False)
            wall = time.perf_counter() - t0
            last = res.history[-1]
            runs.setdefault(label, []).append((last.images_per_s, last.seconds))
            print(f"round {k + 1}, {label}: {last.images_per_s:.1f} images/s training, epoch {last.seconds:.1f} s, "
                  f"fit {wall:.1f} s ({res.images})", flush=True)
    rows = [(label, max(r[0] for r in rs), min(r[1] for r in rs)) for label, rs in runs.items()]
    print()
    print(f"fastest of {a.repeats} runs each")
    print("| images read from | training images/s | epoch (train + validation) |")
    print("| --- | --- | --- |")
    for label, ips, sec in rows:
        print(f"| {label} | {ips:.1f} | {sec:.1f} s |")
    print(f"\nepoch time, cache / photographs: {rows[1][2] / rows[0][2]:.2f}")


if __name__ == "__main__":
    main()
