"""A model factory outside timm, addressed as `tests.custom_model:tiny_cnn`."""

import os

from torch import nn


def tiny_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, num_classes),
    )


class _Constant(nn.Module):
    """Always predicts the last class: a model that cannot learn (for pruning tests)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.unused = nn.Linear(1, 1)  # an optimizer needs at least one parameter

    def forward(self, x):
        import torch

        out = torch.zeros(x.shape[0], self.num_classes, device=x.device)
        out[:, -1] = 1.0
        return out + 0.0 * self.unused.weight.sum()


def constant(num_classes: int) -> nn.Module:
    return _Constant(num_classes)


class _Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Linear(1, 1)

    def forward(self, x):
        raise RuntimeError("boom: this backbone always fails")


def broken(num_classes: int) -> nn.Module:
    return _Broken()


class _Interrupt(_Broken):
    def forward(self, x):
        raise KeyboardInterrupt


def interrupt(num_classes: int) -> nn.Module:
    """Behaves as if the user pressed Ctrl-C during the first step."""
    return _Interrupt()


def slow_when_asked(num_classes: int) -> nn.Module:
    """tiny_cnn, but 1 s a batch when ROCKOPT_TEST_SLOW is set: a trial of several seconds, long enough to kill."""
    import os
    import time

    model = tiny_cnn(num_classes)
    if os.environ.get("ROCKOPT_TEST_SLOW"):
        plain = model.forward

        def forward(x):
            time.sleep(1.0)
            return plain(x)

        model.forward = forward
    return model


class _InterruptLater(nn.Module):
    """Trains an epoch (so a best.pt exists), then behaves as if Ctrl-C came in the second
    (unless ROCKOPT_TEST_NO_INTERRUPT is set: then it trains on)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.net = tiny_cnn(num_classes)
        self.validated = False

    def forward(self, x):
        if not self.training:
            self.validated = True
        elif self.validated and not os.environ.get("ROCKOPT_TEST_NO_INTERRUPT"):
            raise KeyboardInterrupt
        return self.net(x)


def interrupt_later(num_classes: int) -> nn.Module:
    return _InterruptLater(num_classes)
