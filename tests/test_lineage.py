"""Dataset lineage: every training run records its training and validation images as MLflow
dataset inputs, with a digest that follows the data, the folds and the fold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

from tests.conftest import TINY


def _sets(**extra) -> list[str]:
    return [f"{k}={v}" for k, v in {**TINY, "folds": 2, **extra}.items()]


def _runs(experiment: str) -> list:
    """The runs of EXPERIMENT, oldest first."""
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return sorted(runs, key=lambda r: r.info.start_time)


def _inputs(run) -> dict:
    """context -> the MLflow dataset of RUN's input in that context."""
    inputs = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs
    by_context = {next(t.value for t in di.tags if t.key == MLFLOW_DATASET_CONTEXT): di.dataset for di in inputs}
    assert len(by_context) == len(inputs)  # one input per context
    return by_context


def _digests(run) -> tuple[str, str]:
    got = _inputs(run)
    return got["training"].digest, got["validation"].digest


LABELLED = [("path", "string"), ("label", "string")]


def _check_dataset(ds, data: Path, rows: int | None = None, columns=LABELLED) -> None:
    assert ds.name == data.name and ds.source_type == "local"
    assert json.loads(ds.source) == {"uri": str(data.resolve())}
    assert 8 <= len(ds.digest) <= 36
    assert [(c["name"], c["type"]) for c in json.loads(ds.schema)["mlflow_colspec"]] == columns
    if rows is not None:
        assert json.loads(ds.profile)["num_rows"] == rows


def test_train_runs_record_their_folds_and_a_changed_file_changes_the_digest(run_cli, demo_data, workdir):
    code, _, err = run_cli("train", "--data", demo_data, "--all-folds", "-q", "--set", *_sets())
    assert code == 0, err
    code, _, err = run_cli("train", "--data", demo_data, "--fold", "0", "-q", "--set", *_sets())
    assert code == 0, err
    f0, f1, again = _runs("rockopt-train")
    folds = pd.read_csv(workdir / "runs" / "folds" / f"{demo_data.name}-k2-s42.csv", skiprows=1)
    train0, val0 = _inputs(f0)["training"], _inputs(f0)["validation"]
    _check_dataset(train0, demo_data, rows=int((folds.fold != 0).sum()))
    _check_dataset(val0, demo_data, rows=int((folds.fold == 0).sum()))

    # the same data and fold: the same digests; another fold: others; training is not validation
    assert _digests(again) == _digests(f0)
    assert len({*_digests(f0), *_digests(f1)}) == 4

    # one training image of fold 0 rewritten in place, its size kept: the data fingerprint (paths,
    # labels, sizes) stays, the training digest changes, the validation digest stays
    data = workdir / "data-changed"
    shutil.copytree(demo_data, data)  # mtimes kept: the untouched files read as the same
    image = data / folds.loc[folds.fold != 0, "path"].iloc[0]
    raw = bytearray(image.read_bytes())
    raw[15] ^= 1  # the JFIF header's pixel density: the same size, the same pixels
    image.write_bytes(bytes(raw))
    code, _, err = run_cli("train", "--data", data, "--fold", "0", "-q", "--set", *_sets())
    assert code == 0, err
    changed = _runs("rockopt-train")[-1]
    assert changed.data.tags["rockopt.data_fingerprint"] == f0.data.tags["rockopt.data_fingerprint"]
    assert _inputs(changed)["training"].name == "data-changed"
    assert _digests(changed)[0] != _digests(f0)[0]
    assert _digests(changed)[1] == _digests(f0)[1]

    # a search trial on the same data and fold (its own folds file, drawn alike): the same digests
    study = {
        "data": {"path": str(demo_data), "folds": 2, "fold": 0, "image_size": 48},
        "budget": {"n_trials": 1, "max_epochs": 1},
        "sampler": {"name": "random", "seed": 0},
        "fixed": {"backbone": "test_efficientnet", "pretrained": False, "batch_size": 16, "num_workers": 0},
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    code, _, err = run_cli("search", "--study", workdir / "tiny.yaml", "--n-trials", "1", "-q")
    assert code == 0, err
    trial = next(r for r in _runs("tiny") if r.info.run_name == "trial-0")
    assert _digests(trial) == _digests(f0)


def test_cv_fold_runs_record_training_validation_and_test_images(run_cli, demo_data, workdir):
    code, _, err = run_cli("cv", "--data", demo_data, "--out", workdir / "m", "-q", "--set", *_sets())
    assert code == 0, err
    runs = _runs("rockopt-train")
    folds = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(folds) == 2
    for run in folds:
        got = _inputs(run)
        assert set(got) == {"training", "validation", "testing"}
        _check_dataset(got["training"], demo_data)
        _check_dataset(got["validation"], demo_data)
        _check_dataset(got["testing"], demo_data, rows=6, columns=[("id", "string"), ("path", "string")])
    assert len({*_digests(folds[0]), *_digests(folds[1])}) == 4
    assert _inputs(folds[0])["testing"].digest == _inputs(folds[1])["testing"].digest
