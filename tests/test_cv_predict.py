"""cv -> members -> blend -> submission, and predict, on generated data with a tiny model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from tests.conftest import TINY


def _sets(**extra):
    return [f"{k}={v}" for k, v in {**TINY, "folds": 3, **extra}.items()]


def test_cv_members_blend_and_predict_end_to_end(run_cli, demo_data, workdir):
    data = workdir / "data"
    shutil.copytree(demo_data, data)
    for seed in (1, 2):
        code, out, err = run_cli("cv", "--data", data, "--out", workdir / f"m{seed}", "--tta", "flip", "-q", "--set", *_sets(seed=seed))
        assert code == 0, err
        assert "OOF macro-F1" in out

    # the member: OOF rows in folds-file order, every fold's score, test logits
    meta = json.loads((workdir / "m1" / "member.json").read_text())
    oof = np.load(workdir / "m1" / "oof.npz")
    folds = pd.read_csv(meta["folds_file"], skiprows=1)
    assert list(oof["ids"]) == list(folds["path"]) and list(oof["fold"]) == list(folds["fold"])
    assert oof["logits"].dtype == np.float32 and oof["logits"].shape == (len(folds), 6)
    assert len(meta["fold_f1"]) == 3 and meta["tta"] == "flip"
    test = np.load(workdir / "m1" / "test.npz")
    assert list(test["ids"]) == list(pd.read_csv(data / "test.csv")["ID"])

    # MLflow: a cv parent with one child per fold
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("rockopt-train").experiment_id])
    parent = next(r for r in runs if r.info.run_name == "cv-m1")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.data.tags["rockopt.fold"] for r in children) == ["0", "1", "2"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "member")} >= {"member/oof.npz", "member/member.json"}

    # resumable: finished folds are not trained again
    code, out, err = run_cli("cv", "--data", data, "--out", workdir / "m1", "--tta", "flip", "-q", "--set", *_sets(seed=1))
    assert code == 0 and err.count("already done") == 3
    assert len(client.search_runs([parent.info.experiment_id])) == len(runs) + 1  # only the new parent

    # blend: the table, weights, a submission in the template's rows
    code, out, err = run_cli("blend", "--members", workdir / "m1", workdir / "m2", "--method", "greedy", "--out", workdir / "blend")
    assert code == 0, err
    for name in ("m1", "m2", "mean", "greedy", "weights", "cross-validated"):
        assert name in out
    weights = json.loads((workdir / "blend" / "weights.json").read_text())
    assert weights["method"] == "greedy" and abs(sum(m["weight"] for m in weights["members"]) - 1) < 1e-6
    sub = pd.read_csv(workdir / "blend" / "submission.csv")
    template = pd.read_csv(data / "sample_submission.csv")
    assert list(sub.columns) == list(template.columns) and list(sub["ID"]) == list(template["ID"])
    assert set(sub["rock_type"]) <= set(meta["classes"])

    # predict with a member (its fold models), row for row as the template
    code, out, err = run_cli("predict", "--model", workdir / "m1", "--data", data, "--tta", "d4", "--out", workdir / "sub.csv", "--save-logits")
    assert code == 0, err
    sub = pd.read_csv(workdir / "sub.csv")
    assert list(sub["ID"]) == list(template["ID"]) and list(sub.columns) == list(template.columns)
    saved = np.load(workdir / "sub.npz")
    assert saved["probs"].shape == (len(template), 6)

    # a template whose rows do not match test.csv is refused
    template.iloc[::-1].to_csv(data / "sample_submission.csv", index=False)
    code, out, err = run_cli("predict", "--model", workdir / "m1", "--data", data, "--out", workdir / "bad.csv")
    assert code == 2 and "do not match test.csv row for row" in err and not (workdir / "bad.csv").exists()
