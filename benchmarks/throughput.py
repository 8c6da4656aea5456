"""Is the accelerator fed? Training images/s of each backbone, measured three ways in one run.

  (a) compute-bound: synthetic uint8 batches already on the device, forward + backward + step
  (b) the loader alone (the training stream with the augmentation preset, no model), reading
      the source JPEGs, then reading the image cache
  (c) rockopt's real training loop (`fit`, one configuration), reading the image cache

and prints (c)/(a): the share of the compute-bound rate the real loop reaches. Data: synthetic
1.5 MP JPEGs (1440x1080, q90) in the Dacon layout, made once under --work.

    python benchmarks/throughput.py                                   # GPU defaults
    python benchmarks/throughput.py --backbones tf_efficientnet_lite0 --image-size 96 --images 240 --batch-size 16
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from _common import machine, make_photo_data


def compute_bound(backbone: str, size: int, batch: int, steps: int, device: torch.device, classes: int = 7) -> float:
    """(a): images/s of forward + backward + optimizer step on batches already on the device."""
    import torch.nn.functional as F

    from rockopt.train.inference import Normalize
    from rockopt.train.model import create_model, normalization, to_device
    from rockopt.train.optim import create_optimizer
    from rockopt.train.precision import Precision

    model = to_device(create_model(backbone, classes, pretrained=False), device, True).train()
    norm = Normalize(*normalization(model), device, True)
    opt = create_optimizer(model, "adamw", 1e-4, 0.01)
    precision = Precision("auto", device)
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, classes, (batch,), device=device)

    def step() -> None:
        with precision.autocast():
            loss = F.cross_entropy(model(norm(x)).float(), y)
        precision.backward(loss)
        precision.step(opt, model, 1.0)
        opt.zero_grad(set_to_none=True)

    for _ in range(max(3, steps // 5)):  # warm-up: cudnn autotuning, allocator
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    del model, opt
    return steps * batch / (time.perf_counter() - t0)


def loader_only(data: Path, size: int, batch: int, steps: int, workers: int, cached: bool, device: torch.device) -> float:
    """(b): images/s the training stream delivers (seed augmentations), nothing else running."""
    from rockopt.data.dataset import ImageDataset
    from rockopt.data.layout import scan_train
    from rockopt.data.readers import FileReader, open_reader
    from rockopt.data.samplers import create_batch_sampler
    from rockopt.data.stream import TrainStream
    from rockopt.data.transforms import build_transform

    ts = scan_train(data)
    paths = ts.abs_paths()
    reader = open_reader(paths, data, mode="auto", size=None, image_size=size) if cached else FileReader(paths)
    assert cached == (not isinstance(reader, FileReader)), "no image cache found for the cached loader run"
    ds = ImageDataset(paths, ts.labels, build_transform("seed", size), reader=reader)
    sampler = create_batch_sampler("uniform", ts.labels, batch, 0)
    stream = TrainStream(ds, sampler, batch_size=batch, num_workers=workers, lookahead=2, device=device, image_size=size)
    seen, t0, warm = 0, 0.0, 2
    empty = (np.empty(0, np.int64), np.empty(0, np.float32))
    for epoch in range(1, 1000):
        for step in stream.epoch(epoch):
            n = sum(len(mb["index"]) for mb in step.micro_batches)
            sampler.update(*empty)
            if warm:  # the first batches pay for worker start-up
                warm -= 1
                if not warm:
                    t0 = time.perf_counter()
                continue
            seen += n
            if seen >= steps * batch:
                return seen / (time.perf_counter() - t0)
    raise AssertionError("unreachable")


def real_loop(data: Path, backbone: str, size: int, batch: int, workers: int | None, epochs: int) -> float:
    """(c): images/s of the training part of rockopt's loop (`fit`), reading the image cache; last epoch."""
    from rockopt.config import TrainConfig
    from rockopt.data.folds import load_or_create_folds
    from rockopt.data.layout import scan_train
    from rockopt.data.split import make_split
    from rockopt.train.engine import fit

    ts = scan_train(data)
    folds = load_or_create_folds(ts, data.parent / "folds-k10.csv", 10, 0)  # 90 % of the images train
    cfg = TrainConfig(
        data=str(data), backbone=backbone, pretrained=False, image_size=size, batch_size=batch, epochs=epochs,
        num_workers=workers, save_checkpoint=False, folds=10, augment="seed", cache="auto",
    )
    result = fit(cfg, make_split(ts, folds, 0), progress=False)
    assert "cache" in result.images, result.images
    return result.history[-1].images_per_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    gpu = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="davit_base,mambaout_base,resnet50" if gpu else "tf_efficientnet_lite0")
    ap.add_argument("--image-size", type=int, default=224 if gpu else 96)
    ap.add_argument("--cache-size", type=int, default=256 if gpu else 110)
    ap.add_argument("--batch-size", type=int, default=128 if gpu else 16)
    ap.add_argument("--images", type=int, default=6000 if gpu else 240, help="synthetic 1.5 MP JPEGs")
    ap.add_argument("--steps", type=int, default=40 if gpu else 6, help="timed steps for (a) and (b)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs of (c); the last one is timed")
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: rockopt's choice)")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-throughput"))
    a = ap.parse_args()

    from rockopt.data.cache import build_cache
    from rockopt.train.inference import resolve_workers

    device = torch.device("cuda" if gpu else "cpu")
    workers = resolve_workers(a.workers)
    os.environ.setdefault("ROCKOPT_CACHE_DIR", str((a.work / "cache").resolve()))
    print(f"machine: {machine()}")
    t = time.perf_counter()
    data = make_photo_data(a.work / "photos", a.images)
    print(f"data: {a.images} JPEGs 1440x1080 q90 ({time.perf_counter() - t:.0f} s to make or find)")
    r = build_cache(data, a.cache_size, progress=False)
    rate = f", {r.built / r.seconds:.0f} images/s" if r.built else ""
    print(f"image cache at {a.cache_size} px: {r.seconds:.1f} s{rate} ({len(r.cache)} images)")
    print(f"settings: {a.image_size} px, batch {a.batch_size}, seed augmentations, {workers} loader workers, {device.type}")

    jpeg = loader_only(data, a.image_size, a.batch_size, a.steps, workers, cached=False, device=device)
    cache = loader_only(data, a.image_size, a.batch_size, a.steps, workers, cached=True, device=device)
    rows = []
    for b in a.backbones.split(","):
        comp = compute_bound(b, a.image_size, a.batch_size, a.steps, device)
        real = real_loop(data, b, a.image_size, a.batch_size, a.workers, a.epochs)
        rows.append((b, comp, jpeg, cache, real))
        if gpu:
            torch.cuda.empty_cache()
    print()
    print("| backbone | (a) compute-bound | (b) loader, JPEG | (b) loader, cache | (c) rockopt loop, cache | (c)/(a) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for b, comp, jp, ca, real in rows:
        print(f"| {b} | {comp:.0f} | {jp:.0f} | {ca:.0f} | {real:.0f} | {real / comp:.2f} |")
    print("(images/s)")


if __name__ == "__main__":
    main()
