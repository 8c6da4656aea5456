"""A search space draws only values its training setting can take: refused at load, naming the key."""

from __future__ import annotations

import pytest
import yaml

from rockopt.errors import ConfigError
from rockopt.search.study_file import load_study_file

BASE = {"budget": {"n_trials": 2, "max_epochs": 1}, "fixed": {"backbone": "test_efficientnet"}}


def _load(tmp_path, space):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({**BASE, "space": space}, sort_keys=False))
    return load_study_file(path), path


def test_a_float_range_over_a_whole_number_setting_is_refused(tmp_path):
    with pytest.raises(ConfigError) as e:
        _load(tmp_path, {"batch_size": {"type": "float", "low": 4, "high": 12}})
    msg = str(e.value)
    assert "\n" not in msg and "s.yaml" in msg and "space.batch_size" in msg and "valid integer" in msg, msg


@pytest.mark.parametrize(
    "space, needle",
    [
        ({"lr": {"type": "int", "low": 0, "high": 3}}, "space.lr"),  # 0 is no learning rate
        ({"sampler_mode": {"type": "int", "low": 1, "high": 3}}, "space.sampler_mode"),
        ({"pretrained": ["yes please", False]}, "space.pretrained"),
        ({"batch_size": {"type": "float", "low": 8, "high": 32, "step": 0.5}}, "space.batch_size"),
    ],
)
def test_other_values_a_setting_cannot_take_are_refused(tmp_path, space, needle):
    with pytest.raises(ConfigError, match=needle):
        _load(tmp_path, space)


@pytest.mark.parametrize(
    "space",
    [
        {"batch_size": {"type": "int", "low": 4, "high": 12}},
        {"batch_size": {"type": "float", "low": 8, "high": 32, "step": 8}},  # whole numbers only: 8.0, 16.0, ...
        {"warmup_epochs": {"type": "int", "low": 0, "high": 2}},  # a float setting takes whole numbers
        {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        {"label_smoothing": {"type": "float", "low": 0.1, "high": 0.1}},
    ],
)
def test_values_the_setting_takes_pass(tmp_path, space):
    (spec, _), _ = _load(tmp_path, space)
    assert list(spec.space) == list(space)
