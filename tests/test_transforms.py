from __future__ import annotations

import numpy as np
import pytest
import torch

from rockopt.data.transforms import PRESETS, TTA_SETS, build_eval_transform, build_transform, center_square


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_gives_a_square_uint8_image(name):
    img = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    out = build_transform(name, 40, (0.5, 1.0), seed=0)(image=img)["image"]
    assert out.shape == (40, 40, 3) and out.dtype == np.uint8


def test_eval_transform_is_deterministic():
    img = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    t = build_eval_transform(32)
    np.testing.assert_array_equal(t(image=img)["image"], t(image=img)["image"])


def test_seed_crop_pads_when_the_side_exceeds_the_image():
    img = np.full((10, 20, 3), 200, dtype=np.uint8)
    out = center_square(img, 16)
    assert out.shape == (16, 16, 3)
    assert out[0].max() == 0 and out[8, 8, 0] == 200  # black border rows, image in the middle


def test_seed_crop_side_is_drawn_from_the_range():
    from rockopt.data.transforms import RandomSizedCenterCrop
    import albumentations as A

    t = A.Compose([RandomSizedCenterCrop(scale=(0.5, 1.0))], seed=0)
    img = np.zeros((100, 200, 3), dtype=np.uint8)
    sides = {t(image=img)["image"].shape[0] for _ in range(50)}
    assert min(sides) >= 50 and max(sides) <= 100 and len(sides) > 10


def test_tta_d4_gives_eight_distinct_views_of_an_asymmetric_image():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    views = [v(x) for v in TTA_SETS["d4"]]
    assert len(views) == 8
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    flips = {tuple(v(x).flatten().tolist()) for v in TTA_SETS["flip"]}
    assert len(flips) == 4 and flips <= {tuple(v.flatten().tolist()) for v in views}
