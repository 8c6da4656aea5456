from __future__ import annotations

import pytest
import torch

from rockopt.errors import ConfigError
from rockopt.train.optim import OPTIMIZERS, SCHEDULES, create_optimizer, create_schedule


def _lrs(name, epochs=4, steps=10, warmup=1.0):
    model = torch.nn.Linear(4, 2)
    opt = create_optimizer(model, "adamw", 1e-2, 0.01)
    s = create_schedule(name, opt, epochs=epochs, steps_per_epoch=steps, warmup_epochs=warmup, min_lr=1e-5, step_epochs=1, step_gamma=0.5)
    out = []
    for n in range(1, epochs * steps + 1):
        out.append(opt.param_groups[0]["lr"])
        s.step_update(n)
    return out


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\(\)`")
@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_every_schedule_warms_up_then_decays(name):
    lrs = _lrs(name)
    peak = max(lrs)
    assert lrs[0] < 0.2 * peak  # starts low
    assert abs(peak - 1e-2) < 2e-3  # reaches about the set lr
    assert lrs[-1] < 0.3 * peak  # ends well below it
    assert lrs.index(peak) <= 12  # the peak comes at the end of the 1-epoch warm-up


def test_step_schedule_halves_each_step_epoch_after_warmup():
    lrs = _lrs("step", warmup=0.0)
    assert lrs[5] == pytest.approx(1e-2) and lrs[15] == pytest.approx(5e-3) and lrs[25] == pytest.approx(2.5e-3)


def test_unknown_names_are_refused():
    with pytest.raises(ConfigError, match="'optimizer'.*'sgd'.*choose from adam, adamw"):
        create_optimizer(torch.nn.Linear(2, 2), "sgd", 0.1, 0.0)
    opt = create_optimizer(torch.nn.Linear(2, 2), "adam", 0.1, 0.0)
    with pytest.raises(ConfigError, match="'scheduler'.*'linear'.*choose from cosine, onecycle, step"):
        create_schedule("linear", opt, epochs=2, steps_per_epoch=2, warmup_epochs=0, min_lr=0.0, step_epochs=1, step_gamma=0.5)


def test_the_optimizer_setting_offers_the_registry_s_names():
    from typing import get_args

    from rockopt.config import TrainConfig

    assert set(get_args(TrainConfig.model_fields["optimizer"].annotation)) == set(OPTIMIZERS)
