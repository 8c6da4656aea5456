"""Host-side cost per optimizer step of rockopt's training loop, by sampler mode and data-set size.

What the GPU waits for between two steps when the host work runs in series with it: the
sampler's draw, its update (hard-negative mining: the pool), splitting the effective batch
into worker chunks, receiving and collating the chunks, and handing the per-sample losses
over. It drives the real `TrainStream`, sampler and `LossHandover` exactly as `fit` does,
with the model left out; the images are one fixed uint8 array per sample (decoding runs in
the loader workers, in parallel with the GPU, and is measured by throughput.py). The time
is the main thread's CPU time (`time.thread_time`), so waiting on workers does not count.

GPU utilisation allowed = step / (step + host) for the compute-bound step times measured on
one H100 at batch 64 (bf16, channels_last): resnet50 16 ms, davit_base 59 ms, mambaout_base 86 ms.

    python benchmarks/host_step.py                          # N = 10,000 / 100,000 / 380,020
    python benchmarks/host_step.py --n 380020 --steps 400 --workers 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

DACON_SHARES = np.array([0.114, 0.066, 0.041, 0.219, 0.241, 0.163, 0.156])
GPU_STEP_MS = {"resnet50": 16.0, "davit_base": 59.0, "mambaout_base": 86.0}
STAGES = ("draw", "update", "chunking", "collate", "receive + hand-over")


class _FixedImage:
    """Reader: the same image for every sample (picklable for loader workers)."""

    def __init__(self, size: int):
        self.image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)

    def __call__(self, i: int) -> np.ndarray:
        return self.image

    def describe(self) -> str:
        return "a fixed array"


def _identity(image: np.ndarray) -> dict:
    return {"image": image}


class _Timed:
    """Wraps a callable and adds its wall time to a total."""

    def __init__(self, fn, totals: dict, key: str):
        self.fn, self.totals, self.key = fn, totals, key

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.totals[self.key] += time.perf_counter() - t0


def dacon_labels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(DACON_SHARES), n, p=DACON_SHARES / DACON_SHARES.sum())


def host_cost(mode: str, n: int, *, batch: int = 64, workers: int = 2, steps: int = 300, size: int = 224,
              memory: int = 32768, ratio: float = 0.25) -> dict[str, float]:  # fmt: skip
    """Milliseconds per step of each host stage, and their sum, for MODE on N samples."""
    import rockopt.data.stream as stream_mod
    from rockopt.data.dataset import ImageDataset
    from rockopt.data.samplers import create_batch_sampler
    from rockopt.data.stream import TrainStream, stream_plan
    from rockopt.train.handover import LossHandover

    labels = dacon_labels(n)
    ds = ImageDataset([""] * n, labels, _identity, reader=_FixedImage(size))
    sampler = create_batch_sampler(mode, labels, batch, 0, hnm_memory=memory, hnm_ratio=ratio)
    rng = np.random.default_rng(1)
    if sampler.needs_losses:  # a pool in steady state: every sample seen once
        for lo in range(0, n, 4096):
            idx = np.arange(lo, min(n, lo + 4096))
            sampler.update(idx, rng.exponential(1.0, len(idx)).astype(np.float32))
    totals = dict.fromkeys(STAGES, 0.0)
    sampler.draw = _Timed(sampler.draw, totals, "draw")
    sampler.update = _Timed(sampler.update, totals, "update")
    stream = TrainStream(ds, sampler, batch_size=batch, num_workers=workers, **stream_plan(sampler.needs_losses, 1, workers), image_size=size)
    stream._split = _Timed(stream._split, totals, "chunking")
    plain_collate = stream_mod.collate_chunks
    stream_mod.collate_chunks = _Timed(plain_collate, totals, "collate")
    handover = LossHandover(sampler, torch.device("cpu"))
    losses = torch.rand(batch)
    warm = 20
    steps = min(steps, sampler.steps_per_epoch - warm)  # within one epoch: no epoch start in the figures
    try:
        done, cpu0 = 0, 0.0
        for step in stream.epoch(1):
            if done == warm:  # after the workers have started and the first steps are through
                cpu0 = time.thread_time()
                for k in totals:
                    totals[k] = 0.0
            idx = torch.cat([mb["index"] for mb in step.micro_batches])
            handover.push(idx, losses[: len(idx)])
            done += 1
            if done == warm + steps:
                break
        cpu = time.thread_time() - cpu0
    finally:  # unwrap: the wrappers hold their objects in cycles that workers forked later would inherit
        stream_mod.collate_chunks = plain_collate
        del stream._split, sampler.draw, sampler.update
    out = {k: 1e3 * v / steps for k, v in totals.items()}
    out["receive + hand-over"] = max(0.0, 1e3 * cpu / steps - sum(out.values()))
    out["total"] = 1e3 * cpu / steps
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000, 380_020])
    p.add_argument("--modes", nargs="+", default=["uniform", "balanced", "hnm"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--memory", type=int, default=32768)
    args = p.parse_args()
    from _common import machine

    print(machine())
    print(f"host cost per optimizer step, ms (batch {args.batch}, {args.size} px, {args.workers} loader workers, hnm_memory {args.memory})")
    head = f"{'mode':9s} {'N':>8s} " + " ".join(f"{s:>9s}" for s in ("draw", "update", "chunks", "collate", "recv+hand", "total"))
    head += "  " + " ".join(f"{b:>13s}" for b in GPU_STEP_MS)
    print(head)
    for mode in args.modes:
        for n in args.n:
            r = host_cost(mode, n, batch=args.batch, workers=args.workers, steps=args.steps, size=args.size, memory=args.memory)
            util = " ".join(f"{100 * g / (g + r['total']):12.1f}%" for g in GPU_STEP_MS.values())
            cells = " ".join(f"{r[k]:9.3f}" for k in (*STAGES, "total"))
            print(f"{mode:9s} {n:8d} {cells}  {util}", flush=True)


if __name__ == "__main__":
    main()
