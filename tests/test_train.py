"""End to end: `rockopt train` on the real rock photographs, read back from MLflow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from rockopt.config import TrainConfig, load_config
from rockopt.train.checkpoints import load_checkpoint
from tests.conftest import TINY


def _sets(**extra):
    return [f"{k}={v}" for k, v in {**TINY, **extra}.items()]


def _only_run(experiment="rockopt-train"):
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def test_one_epoch_on_rock25_is_tracked_in_mlflow(run_cli, rock25, workdir):
    code, out, err = run_cli("train", "--data", rock25, "--fold", "0", "-q", "--set", *_sets())
    assert code == 0, err
    client, run = _only_run()
    assert run.info.status == "FINISHED"

    # params: the resolved config under the same flat names the study space uses
    params = run.data.params
    assert set(TrainConfig.model_fields) <= set(params)
    assert params["backbone"] == "test_efficientnet" and params["image_size"] == "48" and params["fold"] == "0"

    # metrics per epoch, with step = epoch
    history = client.get_metric_history(run.info.run_id, "val_f1")
    assert [m.step for m in history] == [1]
    assert 0.0 <= history[0].value <= 1.0
    for key in ("train_loss", "val_loss", "lr", "skipped_images", "best_val_f1", "best_epoch"):
        assert key in run.data.metrics, key
    # per-class F1 is one table, not 25 charts
    assert not [k for k in run.data.metrics if k.startswith("val_f1_")]
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "val_f1_per_class.json", str(workdir))).read_text())
    rows = [dict(zip(table["columns"], r)) for r in table["data"]]
    assert len(rows) == 25 and {r["epoch"] for r in rows} == {1}
    assert {"Basalt", "Tuff"} <= {r["class"] for r in rows}
    assert np.mean([r["f1"] for r in rows]) == pytest.approx(history[0].value)

    # tags: data fingerprint, fold, version
    tags = run.data.tags
    assert len(tags["rockopt.data_fingerprint"]) == 16
    assert tags["rockopt.fold"] == "0" and tags["rockopt.version"]

    # artifacts: config, confusion matrix, validation logits with sample ids, skipped list
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "confusion_matrix.png", "val_logits.npz", "skipped_images.txt"} <= names
    local = client.download_artifacts(run.info.run_id, "val_logits.npz", str(workdir))
    npz = np.load(local)
    folds = pd.read_csv(workdir / "runs" / "folds" / "rock25-k5-s42.csv", skiprows=1)
    assert sorted(npz["ids"].tolist()) == sorted(folds.loc[folds.fold == 0, "path"])
    assert npz["logits"].shape == (len(npz["ids"]), 25) and npz["logits"].dtype == np.float32
    cfg_file = client.download_artifacts(run.info.run_id, "config.yaml", str(workdir))
    assert load_config(cfg_file).backbone == "test_efficientnet"


def test_hnm_run_keeps_sampler_state_in_the_checkpoint_and_stays_fresh(run_cli, demo_data, workdir):
    code, _, err = run_cli(
        "train", "--data", demo_data, "-q", "--set", *_sets(sampler_mode="hnm", hnm_memory=8, hnm_ratio=0.5, epochs=2, num_workers=1)
    )
    assert code == 0, err
    client, run = _only_run()
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_f1")] == [1, 2]
    assert run.data.metrics["hnm_staleness"] <= 1
    ckpt = load_checkpoint(next((workdir / "runs" / "train").glob("*/best.pt")))
    seen = ~np.isnan(ckpt["sampler"]["last_loss"])
    assert seen.sum() > 8 and ckpt["sampler"]["version"] > 0
    assert ckpt["config"]["sampler_mode"] == "hnm" and len(ckpt["classes"]) == 6


def test_unreadable_image_is_skipped_and_counted(run_cli, demo_data, workdir):
    root = workdir / "d"
    shutil.copytree(demo_data, root)
    victim = sorted((root / "train" / "Granite").iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated
    code, _, err = run_cli("train", "--data", root, "-q", "--all-folds", "--set", *_sets(folds=2))
    assert code == 0, err
    client = MlflowClient()
    exp = client.get_experiment_by_name("rockopt-train")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["rockopt.fold"] for r in runs) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in runs)
    folds = pd.read_csv(next((workdir / "runs" / "folds").glob("*.csv")), skiprows=1)
    val_fold = int(folds.loc[folds.path == f"train/Granite/{victim.name}", "fold"].iloc[0])
    hit = next(r for r in runs if r.data.tags["rockopt.fold"] == str(val_fold))
    assert hit.data.metrics["skipped_images"] == 1.0  # always visited there: validation sees every image
    listed = open(client.download_artifacts(hit.info.run_id, "skipped_images.txt", str(workdir))).read()
    assert victim.name in listed


def test_demo_runs_the_whole_path_offline(run_cli, workdir):
    code, out, err = run_cli("demo", "--out", workdir / "demo", "--n-trials", "2", "-q", "--set", "epochs=1")
    assert code == 0, err
    assert "ok" in out and "study quick-demo-data: 2 complete" in out
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("quick-demo-data").experiment_id])
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
