"""The training loop: one configuration, one fold, best epoch by validation macro-F1.

Reads top to bottom: set-up, model, data, optimizer and the training step, the loop. Bookkeeping (MLflow, Optuna)
stays outside: the caller passes `on_epoch`, which may raise to stop the run early.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rockopt.config import TrainConfig
from rockopt.data.dataset import ImageDataset
from rockopt.data.samplers import create_batch_sampler
from rockopt.data.split import Split
from rockopt.data.stream import Step, TrainStream, stream_plan
from rockopt.data.transforms import build_eval_transform, build_transform, random_flips
from rockopt.errors import ConfigError, RockoptError
from rockopt.metrics import f1_per_class
from rockopt.report import progress_display
from rockopt.train.checkpoints import LAST, check_resumable, rng_state, save, set_rng_state
from rockopt.train.handover import LossHandover
from rockopt.data.readers import image_reader
from rockopt.train.inference import Evaluation, Normalize, eval_loader, evaluate, resolve_device, resolve_workers
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


@dataclass
class _Progress:
    """What the loop carries from epoch to epoch, and what `last.pt` keeps of it."""

    best: Evaluation | None = None
    best_f1: float = -1.0
    best_epoch: int = 0
    updates: int = 0  # optimizer steps so far
    staleness: int = 0  # the largest number of steps between a draw and its use
    skipped: set[int] = field(default_factory=set)
    val_skipped: set[int] = field(default_factory=set)
    history: list[EpochResult] = field(default_factory=list)

    def state(self) -> dict:
        return {
            "best_f1": self.best_f1, "best_epoch": self.best_epoch, "updates": self.updates, "staleness": self.staleness,
            "skipped": sorted(self.skipped), "val_skipped": sorted(self.val_skipped),
            "history": [asdict(h) for h in self.history], "best_eval": asdict(self.best),
        }  # fmt: skip

    @classmethod
    def from_state(cls, saved: dict) -> _Progress:
        loop = saved["loop"]
        return cls(
            best=Evaluation(**loop["best_eval"]), best_f1=loop["best_f1"], best_epoch=loop["best_epoch"],
            updates=loop["updates"], staleness=loop["staleness"], skipped=set(loop["skipped"]),
            val_skipped=set(loop["val_skipped"]), history=epoch_history(saved),
        )  # fmt: skip


class TrainingStep:
    """One optimizer step: forward, loss and backward over the step's micro-batches, then the update.

    Returns the per-sample losses the sampler ranks by (plain cross-entropy, whatever the
    training loss) with their indices, when the sampler learns from losses.
    """

    def __init__(self, cfg: TrainConfig, split: Split, model, net, norm: Normalize, precision: Precision, optimizer, device: torch.device, ranks_losses: bool):
        self.model, self.net, self.norm, self.precision, self.optimizer = model, net, norm, precision, optimizer
        self.device = device
        self.grad_clip = cfg.grad_clip
        self.loss_fn = make_loss(
            cfg.loss, split.train_labels, len(split.classes), label_smoothing=cfg.label_smoothing,
            class_weight_power=cfg.class_weight_power, focal_gamma=cfg.focal_gamma, device=device,
        )  # fmt: skip
        self.flip_gen = torch.Generator().manual_seed(cfg.seed) if cfg.gpu_flips else None
        self.ranks_losses = ranks_losses
        self.plain_ce = cfg.loss == "ce" and not cfg.label_smoothing  # the training loss is what the pool ranks by
        self.loss_sum = torch.zeros((), device=device)  # over the epoch, read once at its end
        self.seen = 0

    def __call__(self, step: Step, skipped: set[int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        n_step = sum(len(mb["index"]) for mb in step.micro_batches)
        idx, ranked = [], []
        for mb in step.micro_batches:
            skipped.update(mb["skipped"].tolist())
            if mb["image"] is None:
                continue
            x, y = self.norm(mb["image"]), mb["label"].to(self.device, non_blocking=True)
            if self.flip_gen is not None:
                x = random_flips(x, self.flip_gen)
            with self.precision.autocast():
                logits = self.net(x)
            losses = self.loss_fn(logits, y)
            self.precision.backward(losses.sum() / n_step)  # mean over the effective batch
            self.loss_sum += losses.detach().sum()
            self.seen += len(y)
            if self.ranks_losses:
                ranked.append(losses.detach() if self.plain_ce else F.cross_entropy(logits.detach().float(), y, reduction="none"))
                idx.append(mb["index"])
        if n_step:
            self.precision.step(self.optimizer, self.model, self.grad_clip)
            self.optimizer.zero_grad(set_to_none=True)
        return (torch.cat(idx), torch.cat(ranked)) if idx else (None, None)

    def epoch_loss(self) -> tuple[float, int]:
        """The epoch's mean training loss and images trained (the epoch's one sync for the loss); resets both."""
        loss, seen = (self.loss_sum / max(self.seen, 1)).item(), self.seen
        self.loss_sum.zero_()
        self.seen = 0
        return loss, seen


def _training_data(cfg: TrainConfig, split: Split, device: torch.device, workers: int, progress) -> tuple[ImageDataset, TrainStream, Any]:
    """The training images with their batch sampler and stream, and the validation loader."""
    train_ds = ImageDataset(
        split.train_paths,
        split.train_labels,
        build_transform(cfg.augment, cfg.image_size, cfg.crop_scale, seed=cfg.seed, flips=not cfg.gpu_flips),
        reader=image_reader(cfg, split.train_paths, split.data_root, progress=progress is True),
    )
    val_ds = ImageDataset(
        split.val_paths, split.val_labels, build_eval_transform(cfg.image_size), reader=image_reader(cfg, split.val_paths, split.data_root)
    )
    try:
        # every setting by its config key (the seed among them): each mode takes those it declares
        batch_sampler = create_batch_sampler(cfg.sampler_mode, split.train_labels, cfg.batch_size * cfg.accumulation_steps, **cfg.model_dump())
    except ValueError as e:
        raise ConfigError(f"batch_size x accumulation_steps: {e}") from None
    stream = TrainStream(
        train_ds,
        batch_sampler,
        batch_size=cfg.batch_size,
        accumulation_steps=cfg.accumulation_steps,
        num_workers=workers,
        **stream_plan(batch_sampler.needs_losses, cfg.hnm_lookahead, workers),
        device=device,
        image_size=cfg.image_size,
        seed=cfg.seed,
    )
    return train_ds, stream, eval_loader(val_ds, 2 * cfg.batch_size, workers, device, persistent=True)


def _build_model(cfg: TrainConfig, num_classes: int, device: torch.device):
    model = create_model(
        cfg.backbone, num_classes, pretrained=cfg.pretrained, pretrained_file=cfg.pretrained_file, drop_rate=cfg.drop_rate
    )
    model = to_device(model, device, cfg.channels_last)
    net = torch.compile(model) if cfg.compile else model
    return model, net, Normalize(*normalization(model), device, cfg.channels_last)


def _restore(saved: dict, model, optimizer, schedule, batch_sampler, precision: Precision) -> None:
    """Weights, optimizer, schedule, sampler and gradient scaler as a saved state has them."""
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    schedule.load_state_dict(saved["schedule"])
    batch_sampler.load_state_dict(saved["sampler"])
    if precision.scaler and saved["scaler"]:
        precision.scaler.load_state_dict(saved["scaler"])


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

    # model: `net` runs it (compiled, if asked), `model` keeps the plain state_dict keys
    model, net, norm = _build_model(cfg, num_classes, device)

    # data: the image files, or their decoded copies in the image cache
    train_ds, stream, val_loader = _training_data(cfg, split, device, workers, progress)
    batch_sampler = stream.sampler
    handover = LossHandover(batch_sampler, device)

    # optimizer, schedule and the step
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
    train_step = TrainingStep(cfg, split, model, net, norm, precision, optimizer, device, batch_sampler.needs_losses)

    out_dir = Path(out_dir) if out_dir else None
    ckpt_path = out_dir / "best.pt" if out_dir and cfg.save_checkpoint else None
    state_path = out_dir / LAST if out_dir and cfg.save_checkpoint else None
    run, first = _Progress(), 1
    if resume is not None:
        check_resumable(resume, cfg, split)
        _restore(resume, model, optimizer, schedule, batch_sampler, precision)
        run, first = _Progress.from_state(resume), resume["epoch"] + 1
        set_rng_state(resume["rng"], train_step.flip_gen)

    def checkpoint(epoch: int) -> dict:
        return _checkpoint(model, optimizer, schedule, batch_sampler, precision, cfg, split, epoch, run.best_f1)

    with _epoch_task(progress, stream.steps_per_epoch) as (bar, task):
        for epoch in range(first, cfg.epochs + 1):
            bar.reset(task, description=f"epoch {epoch}/{cfg.epochs}")
            t0 = time.perf_counter()
            model.train()
            for step in stream.epoch(epoch):
                # steps trained since the draw saw its last losses (the sampler may lag behind: handover)
                run.staleness = max(run.staleness, run.updates - step.drawn_at_version)
                indices, losses = train_step(step, run.skipped)
                run.updates += 1
                schedule.step_update(run.updates)
                # the draws ahead see these losses: at once on the CPU, a step later on CUDA (no sync)
                handover.push(indices, losses)
                bar.advance(task)
            handover.flush()  # the epoch's last losses, before the checkpoint saves the sampler

            train_loss, seen = train_step.epoch_loss()
            if not np.isfinite(train_loss):
                raise TrainingDiverged(f"training loss became {train_loss} in epoch {epoch}; try a lower lr")
            train_seconds = time.perf_counter() - t0
            ev = evaluate(net, val_loader, norm, precision, num_classes, cfg.val_tta)
            run.val_skipped.update(ev.skipped)
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
                skipped=len(run.skipped) + len(run.val_skipped),
                hnm_staleness=run.staleness,
                hnm_ratio=batch_sampler.ratio,  # as the epoch's start set it
            )
            run.history.append(result)
            if result.val_f1 > run.best_f1:
                run.best, run.best_f1, run.best_epoch = ev, result.val_f1, epoch
                if ckpt_path:
                    save(ckpt_path, checkpoint(epoch))
            if on_epoch:
                on_epoch(result)
            if state_path:  # after on_epoch: an epoch a crash cut short of its records runs again
                save(state_path, checkpoint(epoch) | {"loop": run.state(), "rng": rng_state(train_step.flip_gen), "meta": dict(meta or {})})

    best = run.best
    assert best is not None
    return FitResult(
        best_f1=run.best_f1,
        best_epoch=run.best_epoch,
        history=run.history,
        val_logits=best.logits,
        val_labels=split.val_labels[best.index],
        val_ids=[split.val_ids[i] for i in best.index],
        confusion=best.confusion,
        checkpoint=ckpt_path,
        skipped_paths=[split.train_paths[i] for i in sorted(run.skipped)] + [split.val_paths[i] for i in sorted(run.val_skipped)],
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


