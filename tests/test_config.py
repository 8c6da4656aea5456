from __future__ import annotations

import pytest

from rockopt.config import TrainConfig, dump_config, load_config, parse_sets
from rockopt.errors import ConfigError


def test_defaults_then_file_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("lr: 0.01\nepochs: 4\n")
    cfg = load_config(f, {"epochs": 2})
    assert (cfg.lr, cfg.epochs, cfg.batch_size) == (0.01, 2, TrainConfig().batch_size)


def test_dumped_config_loads_back_identically(tmp_path):
    cfg = load_config(None, {"sampler_mode": "hnm", "crop_scale": [0.6, 1.1], "pretrained_file": "w.safetensors"})
    assert load_config(dump_config(cfg, tmp_path / "c.yaml")) == cfg


def test_set_values_are_read_as_yaml():
    assert parse_sets(["lr=1e-3", "pretrained=false", "crop_scale=[0.5, 1.0]", "backbone=resnet18"]) == {
        "lr": 1e-3,
        "pretrained": False,
        "crop_scale": [0.5, 1.0],
        "backbone": "resnet18",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["epochs"])


def test_unknown_key_names_the_file_and_key_and_suggests(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("learning_rate: 0.1\nsampler_mod: hnm\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'learning_rate'"):
        load_config(f)
    with pytest.raises(ConfigError, match=r"--set: unknown key 'sampler_mod'; did you mean 'sampler_mode'"):
        load_config(None, {"sampler_mod": "hnm"})


def test_wrong_type_names_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: many\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'epochs'.*'many'"):
        load_config(f)
    with pytest.raises(ConfigError, match="key 'sampler_mode'"):
        load_config(None, {"sampler_mode": "hardest"})
    with pytest.raises(ConfigError, match="hnm_ratio"):
        load_config(None, {"hnm_ratio": 2})


def test_config_file_must_be_a_mapping(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(f)


def test_the_choices_settings_and_options_offer_are_the_registries_names():
    """A Literal typed in config.py or the CLI names exactly what the registry behind it holds."""
    from typing import get_args

    from rockopt.cli._options import Tta
    from rockopt.cli.blend import BlendMethod
    from rockopt.config import TrainConfig
    from rockopt.data.samplers import BATCH_SAMPLERS
    from rockopt.data.samplers.schedule import RATIO_SCHEDULES
    from rockopt.data.transforms import PRESETS, TTA_SETS
    from rockopt.ensemble.methods import METHODS
    from rockopt.train.losses import LOSSES
    from rockopt.train.optim import SCHEDULES

    def choices(field: str) -> set:
        return set(get_args(TrainConfig.model_fields[field].annotation))

    assert choices("sampler_mode") == set(BATCH_SAMPLERS)
    assert choices("hnm_ratio_schedule") == set(RATIO_SCHEDULES)
    assert choices("scheduler") == set(SCHEDULES)
    assert choices("loss") == set(LOSSES)
    assert choices("augment") == set(PRESETS)
    assert choices("val_tta") == set(get_args(Tta)) == set(TTA_SETS)
    assert set(get_args(BlendMethod)) == {"auto", *METHODS}
