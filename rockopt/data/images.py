"""Decoding one image file into an RGB array."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rockopt.errors import UnreadableImage

# PIL raises on a truncated file only while this is False (its default); say so explicitly,
# since a truncated JPEG decoded with grey filler is a silently wrong training sample.
from PIL import ImageFile

ImageFile.LOAD_TRUNCATED_IMAGES = False

_DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def decode_rgb(data: bytes | str | Path) -> np.ndarray:
    """HxWx3 uint8 RGB from file bytes or a path, EXIF orientation applied.

    Raises UnreadableImage for a missing, unknown, corrupt or truncated file.
    """
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with Image.open(src) as im:
            im = ImageOps.exif_transpose(im)
            arr = np.asarray(im.convert("RGB"))
    except _DECODE_ERRORS as e:
        raise UnreadableImage(f"{data if not isinstance(data, bytes) else '<bytes>'}: {e}") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnreadableImage(f"{data}: empty image")
    return arr
