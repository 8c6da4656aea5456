"""A small generated data set in the Dacon layout, for the demo and for tests without real photos.

Each class is a procedural texture family (grain size, colour, orientation), noisy enough that
a model has something to learn and a random guess scores at chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# (base RGB, grain size in px, stripe orientation in degrees or None)
_CLASSES = {
    "Basalt": ((60, 60, 65), 2, None),
    "Granite": ((170, 150, 140), 6, None),
    "Gneiss": ((140, 130, 120), 3, 30.0),
    "Sandstone": ((200, 170, 120), 2, None),
    "Schist": ((110, 120, 110), 2, 100.0),
    "Marble": ((225, 225, 220), 10, 60.0),
}


def _texture(rng: np.random.Generator, base, grain: int, angle: float | None, size: int) -> np.ndarray:
    small = max(2, -(-size // grain))
    noise = rng.normal(0, 1, (small, small, 1))
    img = np.kron(noise, np.ones((grain, grain, 1)))[:size, :size]
    if angle is not None:
        yy, xx = np.mgrid[0:size, 0:size]
        a = np.deg2rad(angle + rng.normal(0, 8))
        img = img + 1.2 * np.sin((xx * np.cos(a) + yy * np.sin(a)) / rng.uniform(2.5, 4.0))[..., None]
    colour = np.asarray(base, dtype=np.float64) * rng.uniform(0.8, 1.2, 3)
    out = colour + 28 * img + rng.normal(0, 10, (size, size, 3))
    return np.clip(out, 0, 255).astype(np.uint8)


def make_demo_data(root: str | Path, per_class: int = 30, n_test: int = 24, size: int = 96, seed: int = 0, classes: int | None = None) -> Path:
    """Write ROOT/train/<Class>/*.jpg, ROOT/test/*.jpg, test.csv and sample_submission.csv."""
    import pandas as pd

    root = Path(root)
    rng = np.random.default_rng(seed)
    names = list(_CLASSES)[: classes or len(_CLASSES)]
    n = 0
    for c, name in enumerate(names):
        d = root / "train" / name
        d.mkdir(parents=True, exist_ok=True)
        # an imbalanced set, as the real ones are: later classes get fewer images
        for _ in range(max(6, per_class - 3 * c)):
            Image.fromarray(_texture(rng, *_CLASSES[name], size)).save(d / f"TRAIN_{n:05d}.jpg", quality=90)
            n += 1
    (root / "test").mkdir(parents=True, exist_ok=True)
    ids = [f"TEST_{i:05d}" for i in range(n_test)]
    for i, id_ in enumerate(ids):
        name = names[i % len(names)]
        Image.fromarray(_texture(rng, *_CLASSES[name], size)).save(root / "test" / f"{id_}.jpg", quality=90)
    pd.DataFrame({"ID": ids, "img_path": [f"./test/{i}.jpg" for i in ids]}).to_csv(root / "test.csv", index=False)
    pd.DataFrame({"ID": ids, "rock_type": names[0]}).to_csv(root / "sample_submission.csv", index=False)
    return root
