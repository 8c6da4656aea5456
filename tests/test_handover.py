"""Per-sample losses reach the hard-negative pool without a host sync per step on CUDA:
a step later, as documented, and logged as hnm_staleness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

import rockopt.train.handover as handover
from rockopt.data.samplers import HardNegativeSampler
from tests.conftest import TINY


def test_delayed_handover_gives_each_steps_losses_to_the_sampler_one_step_later_in_order(monkeypatch):
    monkeypatch.setattr(handover, "delay_for", lambda device, sampler: 1)  # the CUDA rule, on the CPU
    sampler = HardNegativeSampler(np.arange(40) % 4, 8, seed=0, memory=4, ratio=0.5)
    h = handover.LossHandover(sampler, torch.device("cpu"))
    for step in range(5):
        idx = torch.arange(step * 8, step * 8 + 8)
        h.push(idx, torch.full((8,), float(step + 1)))
        assert sampler.version == step  # this step's losses wait for the next step
        seen = ~np.isnan(sampler.last_loss)
        assert seen.sum() == 8 * step
    h.flush()
    assert sampler.version == 5
    np.testing.assert_array_equal(sampler.last_loss, np.repeat(np.arange(1, 6), 8).astype(np.float32))
    np.testing.assert_array_equal(np.sort(sampler.pool()), [32, 33, 34, 35])  # the newest, highest losses


def test_on_the_cpu_the_losses_are_handed_over_at_once():
    sampler = HardNegativeSampler(np.arange(40) % 4, 8, seed=0, memory=4, ratio=0.5)
    h = handover.LossHandover(sampler, torch.device("cpu"))
    h.push(torch.arange(8), torch.ones(8))
    assert h.delay == 0 and sampler.version == 1


@pytest.mark.parametrize("delay, expected", [(0, 1), (1, 2)])
def test_training_logs_the_staleness_the_handover_adds(run_cli, demo_data, monkeypatch, delay, expected):
    monkeypatch.setattr(handover, "delay_for", lambda device, sampler: delay if sampler.needs_losses else 0)
    sets = [f"{k}={v}" for k, v in {**TINY, "epochs": 2, "sampler_mode": "hnm", "hnm_memory": 16, "hnm_lookahead": 1}.items()]
    code, _, err = run_cli("train", "--data", demo_data, "-q", "--set", *sets)
    assert code == 0, err
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("rockopt-train").experiment_id])
    assert [m.value for m in client.get_metric_history(run.info.run_id, "hnm_staleness")] == [expected, expected]
