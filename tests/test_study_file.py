"""Study files are checked whole before any trial; each mistake is one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rockopt.errors import ConfigError
from rockopt.search.study_file import load_study_file

GOOD = {
    "budget": {"n_trials": 2, "max_epochs": 1},
    "sampler": {"name": "tpe", "seed": 1},
    "pruner": {"name": "median", "n_warmup_steps": 1},
    "fixed": {"backbone": "test_efficientnet"},
    "space": {
        "sampler_mode": ["uniform", "hnm"],
        "hnm_ratio": {"type": "float", "low": 0.1, "high": 0.5, "when": {"sampler_mode": "hnm"}},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    },
}


def _write(tmp_path, doc):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _with(**changes):
    doc = yaml.safe_load(yaml.safe_dump(GOOD, sort_keys=False))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = doc
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return doc


def test_a_good_file_loads(tmp_path):
    spec, path = load_study_file(_write(tmp_path, GOOD))
    assert list(spec.space) == ["sampler_mode", "hnm_ratio", "lr"]
    assert spec.space["sampler_mode"].type == "categorical"


@pytest.mark.parametrize(
    "changes, needle",
    [
        ({"budgets": {}}, "unknown key 'budgets'"),
        ({"budget__max_epoch": 3}, "unknown key 'budget.max_epoch'"),
        ({"budget__n_trials": "many"}, "key 'budget.n_trials'"),
        ({"space__optimizer": []}, "key 'space.optimizer'"),
        ({"space__lr": {"type": "float", "low": 0.1, "high": 0.01}}, "low must not exceed high"),
        ({"space__lr": {"type": "float", "low": 0.0, "high": 0.01, "log": True}}, "log-scale range must be positive"),
        ({"space__lr": {"type": "floaty", "low": 0.0, "high": 0.01}}, "key 'space.lr.type'"),
        ({"space__lr": {"type": "float", "low": 0.001, "high": 0.01, "scale": "log"}}, "unknown key 'space.lr.scale'"),
        ({"space__sampler_mode": ["uniform", "hardest"]}, "space.sampler_mode"),
        ({"space__learning_rate": {"type": "float", "low": 0.1, "high": 0.2}}, "unknown key 'learning_rate'"),
        ({"fixed__batchsize": 8}, "unknown key 'batchsize'"),
        ({"fixed__epochs": "x"}, "key 'epochs'"),
        ({"pruner__name": "patient"}, "key 'pruner.name'"),
        ({"pruner__n_warmup": 1}, "key 'pruner.n_warmup'"),
        ({"sampler__name": "cmaes"}, "key 'sampler.name'"),
        ({"objective__direction": "minimize"}, "should be maximized"),
    ],
)
def test_each_mistake_names_file_and_key(tmp_path, changes, needle):
    path = _write(tmp_path, _with(**changes))
    with pytest.raises(ConfigError) as e:
        load_study_file(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg and needle in msg, msg


def test_a_condition_must_name_an_earlier_parameter(tmp_path):
    doc = _with()
    doc["space"] = {"hnm_ratio": doc["space"]["hnm_ratio"], "sampler_mode": ["uniform", "hnm"]}
    with pytest.raises(ConfigError, match="'sampler_mode' must be a parameter listed above 'hnm_ratio'"):
        load_study_file(_write(tmp_path, doc))


def test_unknown_study_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="no study named 'nope'.*quick"):
        load_study_file("nope")


@pytest.mark.parametrize("name", ["quick", "cpu", "hnm", "balanced", "backbones"])
def test_every_shipped_study_is_valid(name):
    spec, path = load_study_file(name)
    assert path.name == f"{name}.yaml" and spec.space


def test_relative_paths_in_a_study_file_are_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    doc = _with(fixed__pretrained_file="w.safetensors")
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec, _ = load_study_file(path)
    assert spec.fixed["pretrained_file"] == str(tmp_path / "sub" / "w.safetensors")


def test_a_resumed_study_keeps_its_settings_and_says_the_file_changed(tmp_path):
    from rockopt.search.request import SearchRequest
    from rockopt.search.study import open_study

    def request(spec, path):
        return SearchRequest(path, spec, path, {}, None, None, None, "s", f"sqlite:///{tmp_path / 's.db'}")

    spec, path = load_study_file(_write(tmp_path, GOOD))
    notes: list[str] = []
    opened = open_study(request(spec, path), notes.append)
    kept, number = opened.spec, opened.invocation
    assert notes == [] and kept == spec and number == 0
    changed, _ = load_study_file(_write(tmp_path, _with(space__lr={"type": "float", "low": 1e-3, "high": 0.1}, budget__n_trials=9)))
    opened = open_study(request(changed, path), notes.append)
    kept, number = opened.spec, opened.invocation
    assert len(notes) == 1 and "changed since study 's' was created" in notes[0]
    assert number == 1  # each invocation its own number (and sampler seed)
    assert kept.space["lr"].high == 1e-2  # the study's own settings
    assert kept.budget.n_trials == 9  # but the budget is the caller's


@pytest.mark.parametrize("name", ["quick", "cpu", "hnm", "balanced", "backbones"])
def test_every_bundled_study_draws_trials_that_are_valid_settings(name):
    import optuna

    from rockopt.config import build_config
    from rockopt.search.space import suggest
    from rockopt.search.study_file import base_settings

    spec, _ = load_study_file(name)  # found among the studies rockopt ships
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        params = suggest(study.ask(), spec.space)
        build_config({**base_settings(spec), **params}, f"{name}.yaml")  # raises on a key or value a trial could not use
        seen.update(params)
    assert seen == set(spec.space)  # every parameter, conditional ones included, is reachable


def test_the_shipped_studies_find_the_shared_photos_and_weights_beside_a_checkout(rock25, lite0):
    """quick and cpu name ../shared relative to the study file: from the checkout's studies/,
    the folder beside the checkout."""
    from rockopt.search.study_file import base_settings, load_study_file

    for name in ("quick", "cpu"):
        base = base_settings(load_study_file(name)[0])
        assert Path(base["pretrained_file"]).resolve() == lite0.resolve(), name
        assert Path(base["data"]).resolve() == rock25.resolve(), name
