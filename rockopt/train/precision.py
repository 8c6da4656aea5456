"""Mixed precision: bf16 autocast on CUDA, fp16 with a gradient scaler where bf16 is missing, fp32 on the CPU."""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn


class Precision:
    def __init__(self, mode: str, device: torch.device):
        self.dtype: torch.dtype | None = None
        if device.type == "cuda" and mode != "off":
            if mode == "bf16" or (mode == "auto" and torch.cuda.is_bf16_supported()):
                self.dtype = torch.bfloat16
            else:
                self.dtype = torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.device_type = device.type

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, model: nn.Module, clip: float) -> None:
        if self.scaler:
            self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        if clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
