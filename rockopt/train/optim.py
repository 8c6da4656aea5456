"""Optimizers (timm's factory) and learning-rate schedules by name, all stepped per optimizer update."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rockopt.registry import lookup


def _timm_optimizer(opt: str) -> Callable[..., torch.optim.Optimizer]:
    def make(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        from timm.optim import create_optimizer_v2

        # the fused kernels: one launch per step for all parameters, where they live on CUDA
        fused = {"fused": True} if all(p.is_cuda for p in model.parameters()) else {}
        return create_optimizer_v2(model, opt=opt, lr=lr, weight_decay=weight_decay, **fused)

    return make


# name -> (model, lr, weight_decay) -> optimizer; timm's leave biases and norm layers without weight decay
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adamw": _timm_optimizer("adamw"),
    "adam": _timm_optimizer("adam"),
}


def create_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """An optimizer by name (OPTIMIZERS)."""
    return lookup(OPTIMIZERS, name, "optimizer")(model, lr, weight_decay)


class Schedule:
    """What the loop needs of a schedule: set the learning rate for update number `n`."""

    def __init__(self, step_update: Callable[[int], None], state: Callable[[], dict], load: Callable[[dict], None]):
        self.step_update = step_update
        self.state_dict = state
        self.load_state_dict = load


def _timm(sched: str) -> Callable[..., Schedule]:
    def make(optimizer, *, epochs, steps_per_epoch, warmup_epochs, min_lr, step_epochs, step_gamma) -> Schedule:
        from timm.scheduler import create_scheduler_v2

        warmup = min(warmup_epochs, max(epochs - 1, 0))
        s, _ = create_scheduler_v2(
            optimizer,
            sched=sched,
            num_epochs=max(epochs - warmup, 1),
            decay_epochs=step_epochs,
            decay_rate=step_gamma,
            min_lr=min_lr,
            warmup_lr=optimizer.param_groups[0]["lr"] * 0.01,
            warmup_epochs=warmup,
            warmup_prefix=True,  # warm up first, then the full decay
            step_on_epochs=False,
            updates_per_epoch=steps_per_epoch,
        )
        s.step_update(0)
        return Schedule(s.step_update, s.state_dict, s.load_state_dict)

    return make


def _onecycle(optimizer, *, epochs, steps_per_epoch, warmup_epochs, min_lr, step_epochs, step_gamma) -> Schedule:
    # timm has no one-cycle schedule; torch's does, stepped once per update
    max_lr = [g["lr"] for g in optimizer.param_groups]
    total = max(epochs * steps_per_epoch, 2)
    s = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total,
        pct_start=min(max(warmup_epochs / epochs, 0.01), 0.99),
        final_div_factor=max(max_lr[0] / max(min_lr, 1e-12) / 25.0, 1.0),
    )

    def step_update(n: int) -> None:
        if 0 < n < total:
            s.step()

    return Schedule(step_update, s.state_dict, s.load_state_dict)


SCHEDULES: dict[str, Callable[..., Schedule]] = {
    "cosine": _timm("cosine"),
    "step": _timm("step"),
    "onecycle": _onecycle,
}


def create_schedule(name: str, optimizer: torch.optim.Optimizer, **kwargs) -> Schedule:
    """A schedule by name; kwargs: epochs, steps_per_epoch, warmup_epochs, min_lr, step_epochs, step_gamma."""
    return lookup(SCHEDULES, name, "scheduler")(optimizer, **kwargs)
