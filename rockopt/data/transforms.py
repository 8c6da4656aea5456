"""Augmentation presets (albumentations, by name) and test-time augmentation views.

Every preset ends with a square `image_size` uint8 image; normalisation happens on the
device, so workers ship 4x fewer bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from albumentations.core.transforms_interface import BaseTransformInitSchema


class RandomSizedCenterCrop(A.ImageOnlyTransform):
    """The centre square whose side is a random fraction of the image's shorter side.

    albumentations has no such crop (CenterCrop has a fixed size, RandomSizedCrop a random
    position). A fraction above 1 pads with black first, as the seed team's crop padded
    images smaller than its side.
    """

    class InitSchema(BaseTransformInitSchema):
        scale: tuple[float, float]

    def __init__(self, scale: tuple[float, float] = (0.5, 1.0), p: float = 1.0):
        super().__init__(p=p)
        self.scale = scale

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        h, w = params["shape"][:2]
        return {"side": max(1, round(self.py_random.uniform(*self.scale) * min(h, w)))}

    def apply(self, img: np.ndarray, side: int = 1, **params: Any) -> np.ndarray:
        return center_square(img, side)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("scale",)


def center_square(img: np.ndarray, side: int) -> np.ndarray:
    """The centred side x side square of IMG, zero-padded where IMG is smaller."""
    h, w = img.shape[:2]
    if side > h or side > w:
        ph, pw = max(0, side - h), max(0, side - w)
        img = cv2.copyMakeBorder(img, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT, value=0)
        h, w = img.shape[:2]
    top, left = (h - side) // 2, (w - side) // 2
    return img[top : top + side, left : left + side]


def _flips() -> list[A.BasicTransform]:
    return [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]


def _seed(size: int, crop_scale: tuple[float, float], flips: bool = True) -> list[A.BasicTransform]:
    return [
        RandomSizedCenterCrop(scale=crop_scale),
        A.Resize(size, size, interpolation=cv2.INTER_AREA),
        *(_flips() if flips else []),
        A.CLAHE(clip_limit=2.0, p=0.5),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.3),
    ]


def _light(size: int, crop_scale: tuple[float, float], flips: bool = True) -> list[A.BasicTransform]:
    return [A.RandomResizedCrop(size=(size, size), scale=(0.35, 1.0)), *(_flips() if flips else [])]


def _eval(size: int, crop_scale: tuple[float, float] = (1.0, 1.0), flips: bool = False) -> list[A.BasicTransform]:
    # deterministic: the largest centre square, resized; no random crop in validation
    return [A.SmallestMaxSize(max_size=size, interpolation=cv2.INTER_AREA), A.CenterCrop(size, size)]


PRESETS: dict[str, Callable[[int, tuple[float, float], bool], list[A.BasicTransform]]] = {
    "seed": _seed,
    "light": _light,
    "none": _eval,
}


def build_transform(
    name: str, size: int, crop_scale: tuple[float, float] = (0.5, 1.0), seed: int | None = None, flips: bool = True
) -> A.Compose:
    """A training preset by name: 'seed', 'light' or 'none' (the evaluation transform).

    FLIPS=False leaves the preset's flips out, for a loop that flips on the device (`random_flips`).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown augmentation preset '{name}'; choose from {sorted(PRESETS)}")
    return A.Compose(PRESETS[name](size, tuple(crop_scale), flips), seed=seed)


def random_flips(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each image of an NCHW batch horizontally and vertically, each with probability 1/2.

    On the device: two masked selects per batch instead of two array copies per image in a
    loader worker. Which images flip is drawn on the CPU (no device sync) and copied over.
    """
    h, v = (torch.rand(2, x.shape[0], 1, 1, 1, generator=generator) < 0.5).to(x.device, non_blocking=True).unbind(0)
    x = torch.where(h, x.flip(-1), x)
    return torch.where(v, x.flip(-2), x)


def build_eval_transform(size: int) -> A.Compose:
    return A.Compose(_eval(size), seed=0)


# Test-time augmentation: views of an NCHW batch on the device; predictions are averaged.
def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _h(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _v(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)


def _hv(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2, -1)


def _rot(k: int, flip: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    def view(x: torch.Tensor) -> torch.Tensor:
        x = torch.rot90(x, k, dims=(-2, -1))
        return x.flip(-1) if flip else x

    view.__name__ = f"rot{90 * k}{'_h' if flip else ''}"
    return view


TTA_SETS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "none": [_identity],
    "flip": [_identity, _h, _v, _hv],
    "d4": [_rot(k, f) for f in (False, True) for k in range(4)],  # the 8 symmetries of a square
}


def tta_views(name: str) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    if name not in TTA_SETS:
        raise KeyError(f"unknown TTA set '{name}'; choose from {sorted(TTA_SETS)}")
    return TTA_SETS[name]
