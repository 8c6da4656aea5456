"""What a registered winner costs to use: the MLflow model against `rockopt predict`.

Trains tf_efficientnet_lite0 on the rock25 photos for one epoch with `rockopt train --register`
(a real checkpoint of the real backbone), then, in this one process with the same torch threads:

- log + register: a second version of the same checkpoint (what `best --register` adds);
- load: `mlflow.pyfunc.load_model("models:/bench@champion")`;
- images/s on the same N test photos (default 64): `rockopt predict --model RUN_DIR` as the
  command runs it (checkpoint load, decode, inference, CSV), against the pyfunc's predict on
  file paths, on encoded bytes, and load + predict together. Goal: the pyfunc at most 10 %
  slower than `rockopt predict`;
- latency of one image (base64, as a client sends it) through a running `mlflow models serve`,
  and of a request of N images.

Each timing is the median of --repeat runs after one warm-up.

    python benchmarks/serving.py [--images 64] [--image-size 224] [--repeat 5]
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import requests
import torch
from _common import machine, work_dir

ROCK25 = Path(__file__).resolve().parents[2] / "shared" / "data" / "rock25"
LITE0 = ROCK25.parents[1] / "weights" / "tf_efficientnet_lite0.in1k.safetensors"


def subset(data: Path, n: int, root: Path) -> tuple[Path, list[str]]:
    """A data root whose test set is the first N test photos of DATA; their absolute paths."""
    if root.exists():
        shutil.rmtree(root)
    (root / "test").mkdir(parents=True)
    (root / "train").symlink_to(data / "train")
    test = pd.read_csv(data / "test.csv").head(n)
    for p in test["img_path"]:
        (root / p).symlink_to(data / p)
    test.to_csv(root / "test.csv", index=False)
    pd.read_csv(data / "sample_submission.csv").head(n).to_csv(root / "sample_submission.csv", index=False)
    return root, [str((data / p).resolve()) for p in test["img_path"]]


def median_seconds(fn, repeat: int) -> float:
    fn()  # warm-up: first-call allocations, the page cache
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_latency(uri: str, images: list[str], repeat: int, log: Path) -> tuple[float, float, float]:
    """Seconds until /ping answers; median seconds of a 1-image and an N-image request."""
    port = free_port()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    url = f"http://127.0.0.1:{port}"
    encoded = [base64.b64encode(Path(p).read_bytes()).decode() for p in images]

    def post(rows: list[str]) -> None:
        r = requests.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["image"], "data": [[x] for x in rows]}}, timeout=300)
        r.raise_for_status()

    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        t0 = time.perf_counter()
        while True:
            try:
                if requests.get(f"{url}/ping", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > 300:
                raise SystemExit(f"mlflow models serve did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        ready = time.perf_counter() - t0
        one = median_seconds(lambda: post(encoded[:1]), repeat * 4)
        batch = median_seconds(lambda: post(encoded), repeat)
        return ready, one, batch
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROCK25)
    ap.add_argument("--weights", type=Path, default=LITE0)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", type=Path, default=Path("bench-serving"))
    args = ap.parse_args()

    import mlflow.pyfunc

    from rockopt.model_registry import log_run_checkpoint
    from rockopt.predict import write_predictions

    work = work_dir(args.work)
    os.chdir(work)
    print(machine(), f"torch threads {torch.get_num_threads()}", flush=True)
    data, images = subset(args.data.resolve(), args.images, work / "data")

    sets = {"backbone": "tf_efficientnet_lite0", "pretrained": "false", "pretrained_file": str(args.weights), "image_size": args.image_size,
            "epochs": 1, "batch_size": 32, "folds": 5}  # fmt: skip
    cmd = [sys.executable, "-m", "rockopt", "train", "--data", str(args.data), "-q", "--register", "bench", "--set", *[f"{k}={v}" for k, v in sets.items()]]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"train 1 epoch + log + register (subprocess): {time.perf_counter() - t0:.1f} s", flush=True)
    run_dir = max((work / "runs" / "train").iterdir(), key=lambda p: p.stat().st_mtime)
    run_id = mlflow.MlflowClient().get_model_version_by_alias("bench", "champion").run_id

    t0 = time.perf_counter()
    m = log_run_checkpoint(run_id, run_dir / "best.pt", name="bench")
    size = m.size_bytes / 2**20
    print(f"log + register the checkpoint again (version {m.version}, {size:.1f} MiB of artifacts): {time.perf_counter() - t0:.2f} s")

    uri = "models:/bench@champion"
    load = median_seconds(lambda: mlflow.pyfunc.load_model(uri), args.repeat)
    model = mlflow.pyfunc.load_model(uri)
    n = len(images)
    paths = pd.DataFrame({"image": images})
    blobs = pd.DataFrame({"image": [Path(p).read_bytes() for p in images]})

    cli = median_seconds(lambda: write_predictions(run_dir, data, work / "sub.csv"), args.repeat)
    by_path = median_seconds(lambda: model.predict(paths), args.repeat)
    by_bytes = median_seconds(lambda: model.predict(blobs), args.repeat)
    cold = median_seconds(lambda: mlflow.pyfunc.load_model(uri).predict(paths), args.repeat)
    same = list(model.predict(paths)["label"]) == list(pd.read_csv(work / "sub.csv")["rock_type"])

    print(f"pyfunc load_model({uri}): {load:.2f} s")
    print(f"{n} photos at {args.image_size} px, images/s (median of {args.repeat}):")
    print(f"  rockopt predict --model RUN_DIR      {n / cli:7.1f}   ({cli:.2f} s, checkpoint load included)")
    for name, sec in (("pyfunc.predict, file paths", by_path), ("pyfunc.predict, image bytes", by_bytes), ("load_model + predict, paths", cold)):
        print(f"  {name:<36} {n / sec:7.1f}   ({sec:.2f} s, {100 * (sec / cli - 1):+.0f} % time vs rockopt predict)")
    print(f"  same classes as the submission: {same}")

    ready, one, batch = serve_latency(uri, images, args.repeat, work / "serve.log")
    print(f"mlflow models serve: /ping after {ready:.1f} s; one image {1000 * one:.0f} ms; {n} images {batch:.2f} s ({n / batch:.1f} images/s)")


if __name__ == "__main__":
    main()
