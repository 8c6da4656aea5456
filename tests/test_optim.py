from __future__ import annotations

import pytest
import torch

from rockopt.train.optim import SCHEDULES, create_optimizer, create_schedule


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
    with pytest.raises(KeyError, match="choose from"):
        create_optimizer(torch.nn.Linear(2, 2), "sgd", 0.1, 0.0)
