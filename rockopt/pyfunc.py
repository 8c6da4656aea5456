"""The MLflow model rockopt logs and registers: raw images in, class names and probabilities out.

One model for a single trial and for a blend. Its spec (spec.json, an artifact beside the
checkpoints) lists the members, each with its fold checkpoints, its test-time augmentation and
its blend weight, and the blend's per-class offsets; a trial is one member with one checkpoint
and weight 1. Folds and members are combined as `cv` and `blend` combine them for the test
set: the mean of a member's fold logits, its softmax, the weighted sum over members, the log
plus the offsets (when fitted), the argmax. So the model predicts what the submission says.

Input: a DataFrame with a column `image`, one image a row: encoded image bytes, a base64
string, or the path of a file the model can read. A row that is none of these, or does not
decode, refuses the whole request, naming the row (MLflow's INVALID_PARAMETER_VALUE: HTTP 400).
Output: `label` (the class name), then one probability column per class, named after it.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException

from rockopt.data.images import decode_rgb
from rockopt.ensemble.blend import blend_labels
from rockopt.ensemble.methods import Blend
from rockopt.errors import UnreadableImage
from rockopt.metrics import softmax
from rockopt.predict import Network, eval_dataset, load_network, mean_logits, network_logits

SPEC = "spec"  # the artifact key of spec.json (written by model_registry.write_spec)
IMAGE = "image"


def refuse(row: int, why: str) -> MlflowException:
    """The error that refuses a whole request for one row: INVALID_PARAMETER_VALUE (HTTP 400 when served)."""
    return MlflowException.invalid_parameter_value(f"row {row}: {why}")


def image_sources(frame: pd.DataFrame) -> list[bytes | str]:
    """Each row's image as bytes, or as the path of a file to read (read later, one chunk at a time)."""
    if IMAGE not in getattr(frame, "columns", []):
        raise MlflowException.invalid_parameter_value(f"the input has no '{IMAGE}' column (one image a row: bytes, base64 or a file path)")
    sources: list[bytes | str] = []
    for i, value in enumerate(frame[IMAGE].tolist()):
        if isinstance(value, (bytes, bytearray, memoryview)):
            sources.append(bytes(value))
        elif isinstance(value, str) and value and os.path.isfile(value):
            sources.append(value)
        elif isinstance(value, str):
            text = "".join(value.split())  # MLflow's own base64 of bytes carries newlines
            if text.startswith("data:") and ";base64," in text:
                text = text.split(";base64,", 1)[1]
            try:
                sources.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                raise refuse(i, "neither an existing file nor base64-encoded image bytes") from None
        else:
            raise refuse(i, f"expected image bytes, a base64 string or a file path, got {type(value).__name__}")
    return sources


class RowReader:
    """Decodes row i of the request on demand: memory holds the encoded images, not the pixels."""

    def __init__(self, sources: list[bytes | str]):
        self.sources = sources

    def __call__(self, i: int) -> np.ndarray:
        return decode_rgb(self.sources[i], name=f"row {i}")


def member_probs(networks: list[Network], tta: str, sources: list[bytes | str]) -> np.ndarray:
    """Softmax of the mean of the fold models' logits, as `cv` leaves a member's test logits for `blend`."""
    def fold_logits():
        for net in networks:
            ds = eval_dataset(net.cfg, sources, RowReader(sources))
            # one batch: loader worker processes would cost more than they save
            workers = 0 if len(ds) <= 2 * net.cfg.batch_size else None
            logits, ok = network_logits(net, ds, tta, workers=workers)
            if not ok.all():
                bad = int(np.flatnonzero(~ok)[0])
                raise refuse(bad, _why_unreadable(sources[bad]))
            yield logits

    return softmax(mean_logits(fold_logits()))


def _why_unreadable(source: bytes | str) -> str:
    try:
        decode_rgb(source)
    except UnreadableImage as e:
        return f"not a readable image ({e.reason})"
    return "not a readable image"


class RockoptClassifier(mlflow.pyfunc.PythonModel):
    """The pyfunc: loads the networks the spec names once, then predicts DataFrames of images."""

    # no type hints on predict, on purpose: MLflow would take them over the signature (a string
    # image column) model_registry logs, and without this it warns, as the class is made, that they are missing
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        spec = json.loads(Path(context.artifacts[SPEC]).read_text())
        self.classes: list[str] = spec["classes"]
        offsets = np.asarray(spec["offsets"] if spec.get("offsets") else np.zeros(len(self.classes)))
        self.blend = Blend(np.asarray([m["weight"] for m in spec["members"]]), offsets)
        self.members = [
            (m["tta"], [load_network(context.artifacts[k], fallback_device=True) for k in m["checkpoints"]])
            for m in spec["members"]
        ]

    def predict(self, context, model_input, params=None):
        sources = image_sources(model_input)
        if not sources:
            return pd.DataFrame({"label": pd.Series([], dtype=str), **{c: pd.Series([], dtype=float) for c in self.classes}})
        probs = self.blend.probs(np.stack([member_probs(nets, tta, sources) for tta, nets in self.members]))
        out = pd.DataFrame({"label": blend_labels(probs, self.blend.offsets, self.classes)})
        return pd.concat([out, pd.DataFrame(probs.astype(np.float64), columns=self.classes)], axis=1)
