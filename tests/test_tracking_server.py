"""With a tracking server (an http URI): stdout still carries results only (MLflow's own
"View run ... at: URL" lines stay off it), and a winner registered there loads and predicts by URI."""

from __future__ import annotations

from tests.conftest import TINY


def test_a_run_tracked_on_a_server_prints_no_mlflow_links_on_stdout(run_cli, demo_data, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)  # as a fresh process has it
    sets = [f"{k}={v}" for k, v in {**TINY, "image_size": 32, "folds": 2}.items()]
    code, out, err = run_cli("train", "--data", demo_data, "-q", "--set", *sets)
    assert code == 0, err
    assert "View run" not in out and "View experiment" not in out, out
    assert "best val macro-F1" in out  # the result is still there


def test_a_model_registered_on_a_server_is_loaded_and_predicts_through_it(run_cli, demo_data, mlflow_server, monkeypatch):
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    sets = [f"{k}={v}" for k, v in {**TINY, "image_size": 32, "folds": 2}.items()]
    code, out, err = run_cli("train", "--data", demo_data, "-q", "--register", "site-qc", "--set", *sets)
    assert code == 0, err
    assert "registered as site-qc version 1: models:/site-qc@champion" in out

    # the checkpoints went through the server: the local folder has none of them
    version = MlflowClient(mlflow_server).get_model_version_by_alias("site-qc", "champion")
    assert version.source.startswith("mlflow-artifacts:"), version.source
    code, _, err = run_cli("predict", "--model", "models:/site-qc@champion", "--data", demo_data, "--out", "sub.csv")
    assert code == 0, err
    test = pd.read_csv(demo_data / "test.csv")
    pred = mlflow.pyfunc.load_model("models:/site-qc@champion").predict(pd.DataFrame({"image": [str(demo_data / p) for p in test["img_path"]]}))
    assert list(pred["label"]) == list(pd.read_csv("sub.csv")["rock_type"])
    run = MlflowClient(mlflow_server).get_run(version.run_id)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {demo_data.name}  # lineage on the server too
