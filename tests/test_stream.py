from __future__ import annotations

import numpy as np
import pytest
import torch

from rockopt.data.dataset import ImageDataset
from rockopt.data.layout import scan_train
from rockopt.data.samplers import HardNegativeSampler, UniformSampler
from rockopt.data.stream import TrainStream
from rockopt.data.transforms import build_eval_transform


def _dataset(root):
    data = scan_train(root)
    return ImageDataset(data.abs_paths(), data.labels, build_eval_transform(32)), data.labels


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("lookahead", [0, 1, 2])
def test_hnm_batches_are_never_drawn_more_than_lookahead_steps_before_use(demo_data, workers, lookahead):
    ds, labels = _dataset(demo_data)
    sampler = HardNegativeSampler(labels, effective_batch=12, seed=0, memory=16, ratio=0.5)
    stream = TrainStream(ds, sampler, batch_size=6, accumulation_steps=2, num_workers=workers, lookahead=lookahead)
    staleness = []
    for epoch in (1, 2):
        for step in stream.epoch(epoch):
            staleness.append(sampler.version - step.drawn_at_version)
            assert len(step.micro_batches) == 2
            idx = np.concatenate([mb["index"].numpy() for mb in step.micro_batches])
            assert len(idx) == 12
            for mb in step.micro_batches:
                images = torch.cat(mb["image"]) if isinstance(mb["image"], list) else mb["image"]
                assert tuple(images.shape) == (len(mb["index"]), 3, 32, 32)
                np.testing.assert_array_equal(mb["label"].numpy(), labels[mb["index"].numpy()])
            # the loop's update after the optimizer step
            sampler.update(idx, np.random.default_rng(len(staleness)).random(len(idx)))
    assert len(staleness) == 2 * sampler.steps_per_epoch
    assert max(staleness) == lookahead  # exactly as fresh as asked for, with or without workers


def test_a_draw_made_after_an_update_sees_that_update(demo_data):
    """With lookahead 0 the step right after an update must contain the newly hardest sample."""
    ds, labels = _dataset(demo_data)
    sampler = HardNegativeSampler(labels, effective_batch=8, seed=0, memory=1, ratio=0.125)
    stream = TrainStream(ds, sampler, batch_size=8, num_workers=0, lookahead=0)
    target = None
    for i, step in enumerate(stream.epoch(1)):
        idx = step.micro_batches[0]["index"].numpy()
        if target is not None:
            assert target in idx
        target = i % len(labels)
        losses = np.zeros(len(idx))
        sampler.update(np.append(idx, target), np.append(losses, 100.0))


def test_uniform_stream_serves_each_sample_once_per_epoch(demo_data):
    ds, labels = _dataset(demo_data)
    sampler = UniformSampler(labels, 10, seed=0)
    stream = TrainStream(ds, sampler, batch_size=5, accumulation_steps=2, num_workers=2, lookahead=2)
    seen = []
    for step in stream.epoch(1):
        seen += [i for mb in step.micro_batches for i in mb["index"].tolist()]
        sampler.update(np.empty(0), np.empty(0))
    assert len(seen) == len(set(seen)) == (len(labels) // 10) * 10


def test_modes_that_do_not_learn_from_losses_hand_whole_micro_batches_many_steps_ahead(demo_data):
    from rockopt.data.stream import stream_plan

    ds, labels = _dataset(demo_data)
    plan = stream_plan(False, 1, workers=2)
    assert plan == {"lookahead": 4, "split_batches": False}
    assert stream_plan(True, 1, workers=2) == {"lookahead": 1, "split_batches": True}
    sampler = UniformSampler(labels, 12, seed=0)
    stream = TrainStream(ds, sampler, batch_size=6, accumulation_steps=2, num_workers=2, **plan)
    assert stream.chunks_per_micro == 1 and stream.num_workers == 2
    seen = []
    for step in stream.epoch(1):
        for mb in step.micro_batches:
            assert not isinstance(mb["image"], list) and len(mb["index"]) == 6  # one chunk: nothing to join
            seen += mb["index"].tolist()
        sampler.update(np.empty(0), np.empty(0))
    assert len(seen) == len(set(seen)) == (len(labels) // 12) * 12


def _chunks(step) -> list[torch.Tensor]:
    return [x for mb in step.micro_batches for x in (mb["image"] if isinstance(mb["image"], list) else [mb["image"]])]


@pytest.mark.parametrize("mode", ["uniform", "hnm"])
def test_images_decoded_into_shared_slots_equal_those_sent_whole_and_outlive_the_next_step(demo_data, mode):
    """Workers writing into reused shared-memory slots serve the same images as plain hand-overs,
    and a step's images are intact until the loop asks for the step after the next."""
    from rockopt.data.samplers import create_batch_sampler
    from rockopt.data.stream import stream_plan
    from rockopt.data.transforms import build_transform

    data = scan_train(demo_data)

    def steps(image_size):
        ds = ImageDataset(data.abs_paths(), data.labels, build_transform("seed", 32, seed=0))
        sampler = create_batch_sampler(mode, data.labels, 12, seed=0, hnm_memory=16, hnm_ratio=0.5)
        plan = stream_plan(sampler.needs_losses, 1, workers=2)
        stream = TrainStream(ds, sampler, batch_size=6, accumulation_steps=2, num_workers=2, **plan, image_size=image_size, seed=3)
        for epoch in (1, 2):
            for step in stream.epoch(epoch):
                yield step, stream
                idx = np.concatenate([mb["index"].numpy() for mb in step.micro_batches])
                sampler.update(idx, (idx % 7).astype(np.float32))

    plain = [[x.clone() for x in _chunks(step)] for step, _ in steps(None)]
    previous = None
    n = 0
    for (step, stream), expected in zip(steps(32), plain, strict=True):
        assert stream.slots is not None
        images = _chunks(step)
        for x, want in zip(images, expected, strict=True):
            assert x.untyped_storage().data_ptr() == stream.slots.buffer.untyped_storage().data_ptr()  # no copy
            torch.testing.assert_close(x, want, rtol=0, atol=0)
        if previous is not None:  # the step before is untouched while this one is served
            for x, want in zip(*previous, strict=True):
                torch.testing.assert_close(x, want, rtol=0, atol=0)
        previous = (images, expected)
        n += 1
    assert n == len(plain) > 4


def test_images_that_do_not_fit_the_slots_travel_in_the_message(demo_data):
    ds, labels = _dataset(demo_data)  # 32 px images
    sampler = UniformSampler(labels, 8, seed=0)
    stream = TrainStream(ds, sampler, batch_size=8, num_workers=2, lookahead=2, split_batches=False, image_size=48)
    seen = 0
    for step in stream.epoch(1):
        x = step.micro_batches[0]["image"]
        assert tuple(x.shape) == (8, 3, 32, 32)
        assert x.untyped_storage().data_ptr() != stream.slots.buffer.untyped_storage().data_ptr()
        seen += 1
        sampler.update(np.empty(0), np.empty(0))
    assert seen == sampler.steps_per_epoch


def _write_slot(slots, value: int) -> None:
    slots.array[1, 0] = value


def test_slots_reach_a_spawned_worker_as_shared_memory():
    """Start methods that pickle the dataset (spawn, forkserver) share the slots, not a copy."""
    import torch.multiprocessing as mp

    from rockopt.data.slots import ImageSlots

    slots = ImageSlots(2, 3, 4)
    p = mp.get_context("spawn").Process(target=_write_slot, args=(slots, 7))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert (slots.view(1, 1) == 7).all() and (slots.view(0, 3) == 0).all()


def test_a_step_served_before_an_early_stop_outlives_the_next_epochs_first_step(demo_data):
    """Stopping an epoch early gives the slots of chunks drawn but never served back, so the next
    epoch's first step does not write over the last step served."""
    ds, labels = _dataset(demo_data)
    sampler = HardNegativeSampler(labels, effective_batch=8, seed=0, memory=8, ratio=0.5)
    stream = TrainStream(ds, sampler, batch_size=8, num_workers=2, lookahead=1, image_size=32)
    epoch = stream.epoch(1)
    next(epoch)
    held = next(epoch)
    kept = [x.clone() for x in _chunks(held)]
    epoch.close()
    first = stream.epoch(2)
    next(first)  # the step after `held`: held stays valid until the loop asks for the one after it
    for x, want in zip(_chunks(held), kept, strict=True):
        torch.testing.assert_close(x, want, rtol=0, atol=0)
    first.close()
