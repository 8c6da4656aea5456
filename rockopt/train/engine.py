"""The training loop: one configuration, one fold, best epoch by validation macro-F1.

Reads top to bottom: set-up, data, model, optimizer, the loop. Bookkeeping (MLflow, Optuna)
stays outside: the caller passes `on_epoch`, which may raise to stop the run early.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rockopt.config import TrainConfig
from rockopt.data.dataset import ImageDataset
from rockopt.data.samplers import create_sampler
from rockopt.data.samplers.schedule import hnm_ratio_at
from rockopt.data.split import Split
from rockopt.data.stream import TrainStream, stream_plan
from rockopt.data.transforms import build_eval_transform, build_transform, random_flips
from rockopt.errors import ConfigError, RockoptError
from rockopt.metrics import f1_per_class
from rockopt.report import progress_display
from rockopt.train.checkpoints import LAST, check_resumable, rng_state, save, set_rng_state
from rockopt.train.handover import LossHandover
from rockopt.train.inference import Evaluation, Normalize, eval_loader, evaluate, image_reader, resolve_device, resolve_workers
from rockopt.train.losses import make_loss
from rockopt.train.model import create_model, normalization, to_device
from rockopt.train.optim import create_optimizer, create_schedule
from rockopt.train.precision import Precision


class TrainingDiverged(RockoptError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    val_loss: float
    val_f1: float
    class_f1: np.ndarray
    lr: float
    seconds: float
    images_per_s: float
    skipped: int  # unreadable images met so far (training and validation)
    hnm_staleness: int  # largest number of optimizer steps between a draw and its use
    hnm_ratio: float | None = None  # the pool's share of each batch this epoch (hnm only)

    def metrics(self) -> dict[str, float]:
        """The epoch's scalars for MLflow; per-class F1 goes to a table of its own."""
        return {
            "train_loss": self.train_loss,
            "val_loss": self.val_loss,
            "val_f1": self.val_f1,
            "lr": self.lr,
            "epoch_seconds": self.seconds,
            "train_images_per_s": self.images_per_s,
            "skipped_images": float(self.skipped),
            "hnm_staleness": float(self.hnm_staleness),
            **({"hnm_ratio": self.hnm_ratio} if self.hnm_ratio is not None else {}),
        }


@dataclass
class FitResult:
    best_f1: float
    best_epoch: int
    history: list[EpochResult]
    val_logits: np.ndarray  # float32, best epoch, rows aligned with val_ids
    val_labels: np.ndarray
    val_ids: list[str]
    confusion: np.ndarray
    checkpoint: Path | None
    skipped_paths: list[str] = field(default_factory=list)
    device: str = "cpu"
    precision: str = "fp32"
    images: str = "image files"  # where the training pixels came from: the files or the image cache


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # set both ways: several runs may share one process (a search), each with its own setting
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


@contextmanager
def _epoch_task(progress, total: int):
    """A bar for the epoch's steps: in its own display, or added to (and removed from) a shared one."""
    if isinstance(progress, bool):
        with progress_display(progress) as bar:
            yield bar, bar.add_task("", total=total)
        return
    task = progress.add_task("", total=total)
    try:
        yield progress, task
    finally:
        progress.remove_task(task)


def fit(
    cfg: TrainConfig,
    split: Split,
    *,
    out_dir: str | Path | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    progress=True,
    resume: dict | None = None,
    meta: dict | None = None,
) -> FitResult:
    """Train `cfg` on `split`; keep the best epoch's checkpoint (in `out_dir`) and validation logits.

    `progress`: True/False for an epoch bar of its own, or a running rich Progress to add it to.
    After every epoch (and `on_epoch`) the whole state goes to `out_dir/last.pt`, with META
    beside it; RESUME, such a state (`load_state`), continues at its next epoch exactly as the
    run would have gone on (the same weights, on the same device and settings).
    """
    # set-up
    seed_everything(cfg.seed, cfg.deterministic)
    device = resolve_device(cfg.device)
    precision = Precision(cfg.amp, device)
    num_classes = len(split.classes)
    workers = resolve_workers(cfg.num_workers)

    # model
    model = create_model(
        cfg.backbone, num_classes, pretrained=cfg.pretrained, pretrained_file=cfg.pretrained_file, drop_rate=cfg.drop_rate
    )
    model = to_device(model, device, cfg.channels_last)
    norm = Normalize(*normalization(model), device, cfg.channels_last)
    net = torch.compile(model) if cfg.compile else model  # `model` keeps the plain state_dict keys

    # data: the image files, or their decoded copies in the image cache
    train_ds = ImageDataset(
        split.train_paths,
        split.train_labels,
        build_transform(cfg.augment, cfg.image_size, cfg.crop_scale, seed=cfg.seed, flips=not cfg.gpu_flips),
        reader=image_reader(cfg, split.train_paths, split.data_root, progress=progress is True),
    )
    val_ds = ImageDataset(
        split.val_paths, split.val_labels, build_eval_transform(cfg.image_size), reader=image_reader(cfg, split.val_paths, split.data_root)
    )
    flip_gen = torch.Generator().manual_seed(cfg.seed) if cfg.gpu_flips else None
    effective = cfg.batch_size * cfg.accumulation_steps
    try:
        sampler = create_sampler(
            cfg.sampler_mode, split.train_labels, effective, cfg.seed, hnm_memory=cfg.hnm_memory, hnm_ratio=cfg.hnm_ratio
        )
    except ValueError as e:
        raise ConfigError(f"batch_size x accumulation_steps: {e}") from None
    stream = TrainStream(
        train_ds,
        sampler,
        batch_size=cfg.batch_size,
        accumulation_steps=cfg.accumulation_steps,
        num_workers=workers,
        **stream_plan(sampler.needs_losses, cfg.hnm_lookahead, workers),
        pin_memory=device.type == "cuda",
        image_size=cfg.image_size,
        seed=cfg.seed,
    )
    val_loader = eval_loader(val_ds, 2 * cfg.batch_size, workers, device, persistent=True)
    handover = LossHandover(sampler, device)
    loss_fn = make_loss(
        cfg.loss, split.train_labels, num_classes, label_smoothing=cfg.label_smoothing,
        class_weight_power=cfg.class_weight_power, focal_gamma=cfg.focal_gamma, device=device,
    )  # fmt: skip
    plain_ce = cfg.loss == "ce" and not cfg.label_smoothing  # the training loss is what the pool ranks by

    # optimizer and schedule
    optimizer = create_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay)
    schedule = create_schedule(
        cfg.scheduler,
        optimizer,
        epochs=cfg.epochs,
        steps_per_epoch=stream.steps_per_epoch,
        warmup_epochs=cfg.warmup_epochs,
        min_lr=cfg.min_lr,
        step_epochs=cfg.step_epochs,
        step_gamma=cfg.step_gamma,
    )

    out_dir = Path(out_dir) if out_dir else None
    ckpt_path = out_dir / "best.pt" if out_dir and cfg.save_checkpoint else None
    state_path = out_dir / LAST if out_dir and cfg.save_checkpoint else None
    best: Evaluation | None = None
    best_f1, best_epoch, updates, staleness = -1.0, 0, 0, 0
    skipped: set[int] = set()
    val_skipped: set[int] = set()
    history: list[EpochResult] = []
    first = 1
    if resume is not None:
        check_resumable(resume, cfg, split)
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        schedule.load_state_dict(resume["schedule"])
        sampler.load_state_dict(resume["sampler"])
        if precision.scaler and resume["scaler"]:
            precision.scaler.load_state_dict(resume["scaler"])
        loop = resume["loop"]
        best_f1, best_epoch, updates, staleness = loop["best_f1"], loop["best_epoch"], loop["updates"], loop["staleness"]
        skipped, val_skipped = set(loop["skipped"]), set(loop["val_skipped"])
        history = epoch_history(resume)
        best = Evaluation(**loop["best_eval"])
        set_rng_state(resume["rng"], flip_gen)
        first = resume["epoch"] + 1

    with _epoch_task(progress, stream.steps_per_epoch) as (bar, task):
        for epoch in range(first, cfg.epochs + 1):
            bar.reset(task, description=f"epoch {epoch}/{cfg.epochs}")
            ratio = None
            if hasattr(sampler, "set_ratio"):
                ratio = hnm_ratio_at(
                    epoch, cfg.epochs, cfg.hnm_ratio_schedule, cfg.hnm_ratio, cfg.hnm_ratio_start, cfg.hnm_ratio_warmup_epochs
                )
                sampler.set_ratio(ratio)
            t0 = time.perf_counter()
            model.train()
            loss_sum = torch.zeros((), device=device)
            seen = 0
            for step in stream.epoch(epoch):
                # steps trained since the draw saw its last losses (the sampler may lag behind: handover)
                staleness = max(staleness, updates - step.drawn_at_version)
                n_step = sum(len(mb["index"]) for mb in step.micro_batches)
                idx, plain = [], []
                for mb in step.micro_batches:
                    skipped.update(mb["skipped"].tolist())
                    if mb["image"] is None:
                        continue
                    x, y = norm(mb["image"]), mb["label"].to(device, non_blocking=True)
                    if flip_gen is not None:
                        x = random_flips(x, flip_gen)
                    with precision.autocast():
                        logits = net(x)
                    losses = loss_fn(logits, y)
                    precision.backward(losses.sum() / n_step)  # mean over the effective batch
                    loss_sum += losses.detach().sum()
                    seen += len(y)
                    if sampler.needs_losses:
                        # the pool ranks samples by plain cross-entropy, whatever the training loss
                        plain.append(losses.detach() if plain_ce else F.cross_entropy(logits.detach().float(), y, reduction="none"))
                        idx.append(mb["index"])
                if n_step:
                    precision.step(optimizer, model, cfg.grad_clip)
                    optimizer.zero_grad(set_to_none=True)
                updates += 1
                schedule.step_update(updates)
                # the draws ahead see these losses: at once on the CPU, a step later on CUDA (no sync)
                handover.push(torch.cat(idx) if idx else None, torch.cat(plain) if plain else None)
                bar.advance(task)
            handover.flush()  # the epoch's last losses, before the checkpoint saves the sampler

            train_loss = (loss_sum / max(seen, 1)).item()  # the epoch's one sync point for the loss
            if not np.isfinite(train_loss):
                raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}; try a lower lr")
            train_seconds = time.perf_counter() - t0
            ev = evaluate(net, val_loader, norm, precision, num_classes, cfg.val_tta)
            val_skipped.update(ev.skipped)
            class_f1 = f1_per_class(ev.confusion)
            result = EpochResult(
                epoch=epoch,
                train_loss=train_loss,
                val_loss=ev.loss,
                val_f1=float(class_f1.mean()),
                class_f1=class_f1,
                lr=optimizer.param_groups[0]["lr"],
                seconds=time.perf_counter() - t0,
                images_per_s=seen / max(train_seconds, 1e-9),
                skipped=len(skipped) + len(val_skipped),
                hnm_staleness=staleness,
                hnm_ratio=ratio,
            )
            history.append(result)
            if result.val_f1 > best_f1:
                best, best_f1, best_epoch = ev, result.val_f1, epoch
                if ckpt_path:
                    save(ckpt_path, _checkpoint(model, optimizer, schedule, sampler, precision, cfg, split, epoch, best_f1))
            if on_epoch:
                on_epoch(result)
            if state_path:  # after on_epoch: an epoch a crash cut short of its records runs again
                loop = {
                    "best_f1": best_f1, "best_epoch": best_epoch, "updates": updates, "staleness": staleness,
                    "skipped": sorted(skipped), "val_skipped": sorted(val_skipped),
                    "history": [asdict(h) for h in history], "best_eval": asdict(best),
                }  # fmt: skip
                save(
                    state_path,
                    _checkpoint(model, optimizer, schedule, sampler, precision, cfg, split, epoch, best_f1)
                    | {"loop": loop, "rng": rng_state(flip_gen), "meta": dict(meta or {})},
                )

    assert best is not None
    skipped_paths = [split.train_paths[i] for i in sorted(skipped)] + [split.val_paths[i] for i in sorted(val_skipped)]
    return FitResult(
        best_f1=best_f1,
        best_epoch=best_epoch,
        history=history,
        val_logits=best.logits,
        val_labels=split.val_labels[best.index],
        val_ids=[split.val_ids[i] for i in best.index],
        confusion=best.confusion,
        checkpoint=ckpt_path,
        skipped_paths=skipped_paths,
        device=str(device),
        precision=precision.name,
        images=train_ds.read.describe(),
    )


def _checkpoint(model, optimizer, schedule, sampler, precision, cfg, split, epoch, best_f1) -> dict:
    """Everything needed to continue or to predict: weights, optimizer, schedule, sampler, config."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "sampler": sampler.state_dict(),
        "scaler": precision.scaler.state_dict() if precision.scaler else None,
        "epoch": epoch,
        "best_f1": best_f1,
        "config": cfg.flat(),
        "classes": list(split.classes),
        "fold": split.fold,
        "data_fingerprint": split.data_fingerprint,
        "folds_fingerprint": split.folds_fingerprint,
    }


def epoch_history(state: dict) -> list[EpochResult]:
    """The epochs a saved state has behind it."""
    return [EpochResult(**h) for h in state["loop"]["history"]]


