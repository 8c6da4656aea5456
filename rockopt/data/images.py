"""Decoding one image file into an RGB array."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from rockopt.errors import UnreadableImage, first_line

# PIL raises on a truncated file only while this is False (its default); say so explicitly,
# since a truncated JPEG decoded with grey filler is a silently wrong training sample.
from PIL import ImageFile

ImageFile.LOAD_TRUNCATED_IMAGES = False

# what PIL raises for a file it cannot decode
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


def decode_rgb(data: bytes | str | Path, shorter: int | None = None, name: str | Path | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB from file bytes or a path, EXIF orientation applied.

    SHORTER: resize so the shorter side is SHORTER (aspect kept, never enlarged). A JPEG is
    then decoded at a reduced DCT scale first (PIL's draft mode), which makes a 1.5 MP photo
    several times cheaper to read at 256 px. The image cache and the direct path both call
    this, so cached pixels are the ones a direct read would give.
    NAME: the file the bytes came from, for messages (default: the path itself).

    Raises UnreadableImage, naming the file, for a missing, empty, unknown, corrupt or truncated file.
    """
    label = str(name if name is not None else ("<bytes>" if isinstance(data, bytes) else data))
    if isinstance(data, bytes) and not data:
        raise UnreadableImage(label, "empty file (0 bytes)")
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with Image.open(src) as im:
            if shorter:
                # draft keeps both sides >= the request, so the shorter side stays >= SHORTER
                im.draft("RGB", (shorter, shorter))
            im = ImageOps.exif_transpose(im)
            arr = np.asarray(im.convert("RGB"))
    except DECODE_ERRORS as e:
        raise UnreadableImage(label, decode_failure(e, data)) from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise UnreadableImage(label, "empty image")
    return resize_shorter(arr, shorter) if shorter else arr


def decode_failure(e: Exception, data: bytes | str | Path) -> str:
    """Why DATA (file bytes or a path) could not be decoded, from one of DECODE_ERRORS: PIL's
    words without the file object it was given (the caller names the file)."""
    if isinstance(e, UnidentifiedImageError):
        empty = not isinstance(data, bytes) and _size(data) == 0
        return "empty file (0 bytes)" if empty else "cannot identify image file (not an image, or a format PIL cannot read)"
    if isinstance(e, FileNotFoundError):
        return "file not found"
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "the file", first_line(e))


def _size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1


def resize_shorter(arr: np.ndarray, shorter: int) -> np.ndarray:
    """Resize so the shorter side is SHORTER (area interpolation); smaller images are kept as they are."""
    h, w = arr.shape[:2]
    if min(h, w) <= shorter:
        return arr
    if h <= w:
        size = (max(1, round(w * shorter / h)), shorter)
    else:
        size = (shorter, max(1, round(h * shorter / w)))
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA)
