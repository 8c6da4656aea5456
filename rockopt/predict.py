"""Inference with trained checkpoints, test-time augmentation, and the submission file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rockopt.config import TrainConfig, build_config, load_config
from rockopt.data.dataset import ImageDataset
from rockopt.data.layout import read_test_csv, resolve_test_path, write_submission
from rockopt.data.transforms import build_eval_transform
from rockopt.errors import ConfigError, DataError, RockoptError
from rockopt.metrics import softmax
from rockopt.outputs import ensure_parent
from rockopt.train.checkpoints import load_checkpoint
from rockopt.data.readers import image_reader
from rockopt.train.inference import Normalize, eval_loader, logits_by_chunk, resolve_device, resolve_workers
from rockopt.train.model import create_model, normalization, to_device
from rockopt.train.precision import Precision


@dataclass
class Predictor:
    """One or more checkpoints of the same configuration (the fold models of a member)."""

    checkpoints: list[Path]
    config_path: Path
    classes: list[str]


def find_predictor(model_dir: str | Path) -> Predictor:
    """An exported trial (config.yaml + best.pt) or a `cv` member (config.yaml + fold-*/best.pt)."""
    d = Path(model_dir)
    if not d.is_dir():
        raise RockoptError(f"model directory not found: {d}")
    config = d / "config.yaml"
    if not config.is_file():
        raise RockoptError(f"{d}: no config.yaml (expected an exported trial or a cv member)")
    ckpts = [d / "best.pt"] if (d / "best.pt").is_file() else sorted(d.glob("fold-*/best.pt"))
    if not ckpts:
        raise RockoptError(f"{d}: no best.pt and no fold-*/best.pt: nothing to predict with")
    classes = load_checkpoint(ckpts[0])["classes"]
    return Predictor(ckpts, config, classes)


@dataclass
class Network:
    """One checkpoint's model on its device, ready for inference, with what predicting needs of its settings."""

    model: torch.nn.Module
    norm: Normalize
    precision: Precision
    cfg: TrainConfig
    classes: list[str]
    device: torch.device


def load_network(checkpoint: str | Path, state: dict | None = None, fallback_device: bool = False) -> Network:
    """The network of CHECKPOINT (or its already loaded STATE), in eval mode on the settings' device.

    FALLBACK_DEVICE: a device the settings name that this machine lacks (a model trained on a
    GPU, served on a CPU) becomes the best one here instead of an error.
    """
    state = state if state is not None else load_checkpoint(checkpoint)
    cfg = build_config(state["config"], f"{checkpoint}")
    try:
        device = resolve_device(cfg.device)
    except ConfigError:
        if not fallback_device:
            raise
        device = resolve_device("auto")
    model = create_model(cfg.backbone, len(state["classes"]), pretrained=False, pretrained_file=None)
    model.load_state_dict(state["model"])
    model = to_device(model, device, cfg.channels_last).eval()
    norm = Normalize(*normalization(model), device, cfg.channels_last)
    return Network(model, norm, Precision(cfg.amp, device), cfg, list(state["classes"]), device)


def network_logits(net: Network, ds: ImageDataset, tta: str = "none", batch_size: int | None = None, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits of NET (mean over TTA views) for every image of DS, and a mask of the rows that could be read.

    Unreadable images get zero logits (a uniform prediction) and mask False. Batches of
    2 x the training batch size unless BATCH_SIZE; loader workers as the settings say unless WORKERS.
    """
    bs = batch_size or 2 * net.cfg.batch_size
    workers = resolve_workers(net.cfg.num_workers) if workers is None else workers
    out = np.zeros((len(ds), len(net.classes)), dtype=np.float32)
    ok = np.zeros(len(ds), dtype=bool)
    for chunk, logits in logits_by_chunk(net.model, eval_loader(ds, bs, workers, net.device), net.norm, net.precision, tta):
        if logits is not None:
            idx = np.asarray(chunk["index"])
            out[idx] = logits.cpu().numpy()
            ok[idx] = True
    return out, ok


def eval_dataset(cfg: TrainConfig, paths: list, reader=None) -> ImageDataset:
    """PATHS (or whatever READER reads by index) through the evaluation transform of CFG: the
    largest centre square, resized to the image size."""
    return ImageDataset(paths, None, build_eval_transform(cfg.image_size), reader=reader)


def predict_logits(
    checkpoint: str | Path, paths: list[str], tta: str = "none", batch_size: int | None = None, data_root: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (mean over TTA views) of one checkpoint for PATHS; also a mask of the rows that could be read.

    With DATA_ROOT (the data set PATHS belong to), images come from its image cache where the
    checkpoint's settings would have used it in training.

    Unreadable images get zero logits (a uniform prediction) and mask False.
    """
    net = load_network(checkpoint)
    cfg = net.cfg
    reader = image_reader(cfg.model_copy(update={"cache": "auto"} if cfg.cache == "build" else {}), paths, str(data_root)) if data_root else None
    return network_logits(net, eval_dataset(cfg, paths, reader), tta, batch_size)


def mean_logits(per_checkpoint: Iterable[np.ndarray]) -> np.ndarray:
    """The mean of the fold models' logits, summed in fold order as `cv` sums a member's test logits."""
    total, n = None, 0
    for logits in per_checkpoint:
        total = logits if total is None else total + logits
        n += 1
    return (total / n).astype(np.float32)


def test_images(data_root: str | Path) -> tuple[list[str], list[str]]:
    """IDs and absolute paths of the test images, in test.csv order."""
    root = Path(data_root)
    df = read_test_csv(root)
    if df is None:
        raise DataError(f"{root}: no test.csv (ID,img_path): nothing to predict")
    paths = [resolve_test_path(root, p) for p in df["img_path"]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DataError(f"{root}/test.csv names {len(missing)} missing file(s), e.g. {missing[0]}")
    return list(df["ID"]), [str(p) for p in paths]


def predict_dir(model_dir: str | Path, data_root: str | Path, tta: str = "none") -> tuple[list[str], np.ndarray, list[str]]:
    """Test IDs, logits (mean over the checkpoints) and class names for a model directory."""
    p = find_predictor(model_dir)
    load_config(p.config_path)  # a broken config should fail here, not mid-way
    ids, paths = test_images(data_root)
    return ids, mean_logits(predict_logits(ckpt, paths, tta, data_root=data_root)[0] for ckpt in p.checkpoints), p.classes


def write_predictions(model_dir: str | Path, data_root: str | Path, out: str | Path, tta: str = "none", save_logits: bool = False) -> tuple[Path, int]:
    """`rockopt predict`: the submission OUT (the template's rows and column order) and, with
    SAVE_LOGITS, the logits and probabilities beside it (.npz). Returns OUT and its row count."""
    out = ensure_parent(out, "--out")  # before the checkpoints are loaded and run
    ids, logits, classes = predict_dir(model_dir, data_root, tta)
    path = write_submission(data_root, ids, [classes[i] for i in logits.argmax(1)], out)
    if save_logits:
        np.savez_compressed(path.with_suffix(".npz"), ids=np.asarray(ids), logits=logits, probs=softmax(logits.copy()), classes=np.asarray(classes))
    return path, len(ids)
