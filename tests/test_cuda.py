"""The CUDA path of the training stream and the loss hand-over (run by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh runs it)")


def test_page_locked_slots_reach_the_device_intact_while_the_host_runs_ahead(demo_data):
    """Slots are page-locked and copied asynchronously; a slot is reused only after its copy
    is done, even when the host runs many steps ahead of a busy GPU."""
    from rockopt.data.dataset import ImageDataset
    from rockopt.data.layout import scan_train
    from rockopt.data.samplers import UniformSampler
    from rockopt.data.stream import TrainStream
    from rockopt.data.transforms import build_transform

    data = scan_train(demo_data)
    device = torch.device("cuda")

    def device_steps(image_size):
        ds = ImageDataset(data.abs_paths(), data.labels, build_transform("seed", 32, seed=0))
        sampler = UniformSampler(data.labels, 8, seed=0)
        stream = TrainStream(ds, sampler, batch_size=8, num_workers=2, lookahead=4, split_batches=False,
                             device=device, image_size=image_size, seed=1)  # fmt: skip
        if image_size:
            assert stream.slots.registered
        out = []
        for epoch in (1, 2):
            for step in stream.epoch(epoch):
                x = step.micro_batches[0]["image"].to(device, non_blocking=True)
                busy = torch.randn(2048, 2048, device=device)
                for _ in range(20):  # keep the GPU behind the host
                    busy = busy @ busy / 2048
                out.append(x)
                sampler.update(np.empty(0), np.empty(0))
        torch.cuda.synchronize()
        return out

    plain, slotted = device_steps(None), device_steps(32)
    assert len(plain) == len(slotted) > 8
    for a, b in zip(plain, slotted, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_losses_reach_the_sampler_one_step_late_without_a_sync():
    from rockopt.data.samplers import HardNegativeSampler
    from rockopt.train.handover import LossHandover

    labels = np.repeat(np.arange(4), 16)
    sampler = HardNegativeSampler(labels, effective_batch=8, seed=0, memory=8, ratio=0.5)
    handover = LossHandover(sampler, torch.device("cuda"))
    v0 = sampler.version
    handover.push(torch.arange(8), torch.full((8,), 5.0, device="cuda"))
    assert sampler.version == v0  # held back one step
    handover.push(torch.arange(8, 16), torch.ones(8, device="cuda"))
    assert sampler.version == v0 + 1
    handover.flush()
    assert sampler.version == v0 + 2
