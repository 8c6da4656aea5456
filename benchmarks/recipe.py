"""The seed team's recipe, measured: `rockopt cv` of the default recipe and of its variants
(focal loss; hard-negative mining with a constant and with a linear ratio schedule), on the
same folds file, out-of-fold macro-F1 side by side.

    python benchmarks/recipe.py [--data ../shared/data/rock25] [--epochs 4] [--image-size 128]

Every variant trains the same backbone from the same weights with the same seed; only the
named settings differ. Prints one table row per variant and writes them to recipe.json in
the work directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from _common import machine, work_dir

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared"

VARIANTS = {
    "default recipe (uniform, ce)": [],
    "loss: focal": ["loss=focal"],
    "hnm, constant ratio": ["sampler_mode=hnm", "hnm_ratio=0.25", "hnm_memory=128"],
    "hnm, linear ratio 0 -> 0.25": ["sampler_mode=hnm", "hnm_ratio=0.25", "hnm_memory=128", "hnm_ratio_schedule=linear", "hnm_ratio_start=0"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "data" / "rock25")
    ap.add_argument("--weights", type=Path, default=SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("bench-recipe"))
    args = ap.parse_args()
    work = work_dir(args.work)
    folds_file = work / "folds.csv"  # one folds file for every variant: their OOF rows are comparable
    base = [
        f"pretrained_file={args.weights.resolve()}", f"image_size={args.image_size}", f"epochs={args.epochs}",
        f"batch_size={args.batch_size}", f"folds={args.folds}", f"folds_file={folds_file}", "cache=off", "seed=0",
        f"out_dir={work / 'runs'}", "experiment=recipe",
    ]  # fmt: skip
    rows = []
    print(machine())
    print(f"{args.data}: cv, {args.folds} folds, tf_efficientnet_lite0 at {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}")
    for name, extra in VARIANTS.items():
        out = work / "members" / name.split(" ")[0].replace(":", "") / "_".join(e.replace("=", "-") for e in extra or ["default"])
        cmd = [sys.executable, "-m", "rockopt", "cv", "--data", str(args.data), "--out", str(out), "-q"]
        for s in base + extra:
            cmd += ["--set", s]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        meta = json.loads((out / "member.json").read_text())
        row = {"variant": name, "settings": " ".join(extra), "oof_f1": meta["oof_f1"], "fold_f1": meta["fold_f1"], "minutes": (time.perf_counter() - t0) / 60}
        rows.append(row)
        folds = " ".join(f"{f:.3f}" for f in row["fold_f1"])
        print(f"| {name} | {row['oof_f1']:.4f} | {folds} | {row['minutes']:.1f} min |", flush=True)
    (work / "recipe.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
