"""The winners as MLflow models: logged with their run, registered, loaded back, served; they
predict what `rockopt predict` and the blend's submission say."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import mlflow
import optuna
import pandas as pd
import requests
import torch
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tests.conftest import TINY, serving

STUDY = {
    "data": {"folds": 4, "fold": 0, "image_size": 32},
    "budget": {"n_trials": 1, "max_epochs": 1, "keep_checkpoints": 100},
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "fixed": {"backbone": "tests.custom_model:tiny_cnn", "pretrained": False, "batch_size": 16, "num_workers": 0, "lr": 0.003},
    "space": {"label_smoothing": {"type": "float", "low": 0.0, "high": 0.1}},
}


def _study_file(workdir: Path, data: Path) -> Path:
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "data": {**STUDY["data"], "path": str(data)}}, sort_keys=False))
    return path


def _labels(csv: Path) -> list[str]:
    return list(pd.read_csv(csv)["rock_type"])


def _test_paths(data: Path) -> list[str]:
    return [str(data / p) for p in pd.read_csv(data / "test.csv")["img_path"]]


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _registered_names() -> list[str]:
    return [m.name for m in MlflowClient().search_registered_models()]


def test_best_register_predicts_as_the_exported_trial_from_bytes_base64_and_paths(run_cli, rock25, workdir):
    study = _study_file(workdir, rock25)
    code, _, err = run_cli("search", "--study", study, "-q")
    assert code == 0, err
    code, out, err = run_cli("best", "--study", study, "--export", "best", "--register", "rocks")
    assert code == 0, err
    assert "registered trial 0 as rocks version 1: models:/rocks@champion" in out

    # `predict --model models:/...` writes the submission `predict --model best/trial-N` writes
    assert run_cli("predict", "--model", "best/trial-0000", "--data", rock25, "--out", "dir.csv")[0] == 0
    code, _, err = run_cli("predict", "--model", "models:/rocks@champion", "--data", rock25, "--out", "uri.csv")
    assert code == 0, err
    expected = _labels(workdir / "dir.csv")
    assert _labels(workdir / "uri.csv") == expected

    # the pyfunc itself: bytes, base64 and paths, one frame, the same classes
    model = mlflow.pyfunc.load_model("models:/rocks@champion")
    paths = _test_paths(rock25)[:6]
    frame = pd.DataFrame({"image": [Path(paths[0]).read_bytes(), Path(paths[1]).read_bytes(), _b64(paths[2]), _b64(paths[3]), paths[4], paths[5]]})
    pred = model.predict(frame)
    classes = torch.load(workdir / "best" / "trial-0000" / "best.pt", weights_only=False)["classes"]
    assert list(pred.columns) == ["label", *classes] and len(classes) == 25
    assert list(pred["label"]) == expected[:6]
    assert (pred[classes].sum(axis=1) - 1).abs().max() < 1e-5

    # linked to the trial's run, which stays as it was; metrics of its best epoch on the model
    client = MlflowClient()
    version = client.get_model_version_by_alias("rocks", "champion")
    run = client.get_run(version.run_id)
    assert run.info.status == "FINISHED" and [o.model_id for o in run.outputs.model_outputs] == [version.tags["rockopt.model_id"]]
    assert "val_f1" in {m.key for m in client.get_logged_model(version.tags["rockopt.model_id"]).metrics}

    # registering again: version 2 takes the alias, version 1 still loads
    code, out, err = run_cli("best", "--study", study, "--register", "rocks", "--format", "json")
    assert code == 0 and json.loads(out)[0]["trial"] == 0 and "rocks version 2" in err
    assert str(client.get_model_version_by_alias("rocks", "champion").version) == "2"
    assert list(mlflow.pyfunc.load_model("models:/rocks/1").predict(frame)["label"]) == expected[:6]

    # an alias the model does not have: one line, no submission
    code, _, err = run_cli("predict", "--model", "models:/rocks@nope", "--data", rock25, "--out", "nope.csv")
    assert code == 2 and err.count("\n") == 1 and "alias nope not found" in err and not (workdir / "nope.csv").exists()


def _member_sets(**extra) -> list[str]:
    return [f"{k}={v}" for k, v in {**TINY, "folds": 3, **extra}.items()]


def test_blend_register_predicts_the_blend_s_submission(run_cli, rock25, workdir):
    data = rock25
    for seed, tta in ((1, "flip"), (2, "none")):  # each member keeps its own TTA
        code, _, err = run_cli("cv", "--data", data, "--out", workdir / f"m{seed}", "--tta", tta, "-q", "--set", *_member_sets(seed=seed))
        assert code == 0, err
    code, out, err = run_cli(
        "blend", "--members", workdir / "m1", workdir / "m2", "--method", "weights", "--offsets", "--out", "blend", "--register", "ens"
    )
    assert code == 0, err
    assert "registered the ensemble as ens version 1: models:/ens@champion" in out

    pred = mlflow.pyfunc.load_model("models:/ens@champion").predict(pd.DataFrame({"image": _test_paths(data)}))
    assert list(pred["label"]) == _labels(workdir / "blend" / "submission.csv")
    blend_run = MlflowClient().get_run(MlflowClient().get_model_version("ens", "1").run_id)
    assert blend_run.info.run_name == "blend-weights" and blend_run.info.status == "FINISHED"


def _post(url: str, rows: list[str]) -> requests.Response:
    return requests.post(url, json={"dataframe_split": {"columns": ["image"], "data": [[r] for r in rows]}}, timeout=60)


def test_a_served_model_answers_as_the_pyfunc_and_refuses_a_bad_row_by_number(run_cli, rock25, workdir):
    code, out, err = run_cli("train", "--data", rock25, "-q", "--register", "srv", "--set", *_member_sets(folds=2))
    assert code == 0, err
    assert "registered as srv version 1: models:/srv@champion" in out
    paths = _test_paths(rock25)[:3]
    expected = list(mlflow.pyfunc.load_model("models:/srv@champion").predict(pd.DataFrame({"image": paths}))["label"])

    args = ["models", "serve", "-m", "models:/srv@champion", "--env-manager", "local", "-h", "127.0.0.1", "-w", "1"]
    with serving(args, "/ping", workdir / "serve.log") as url:
        ok = _post(f"{url}/invocations", [_b64(paths[0]), _b64(paths[1]), paths[2]])  # base64 and a path on the server
        assert ok.status_code == 200, ok.text
        assert [p["label"] for p in ok.json()["predictions"]] == expected

        for bad, why in (("not an image", "neither an existing file nor base64"), (base64.b64encode(b"plain text").decode(), "not a readable image")):
            refused = _post(f"{url}/invocations", [_b64(paths[0]), bad])
            assert refused.status_code == 400, refused.text
            assert refused.json()["error_code"] == "INVALID_PARAMETER_VALUE" and f"row 1: {why}" in refused.json()["message"]
        typed = requests.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["image"], "data": [[3]]}}, timeout=60)
        assert typed.status_code == 400 and "image" in typed.json()["message"], typed.text  # MLflow's schema check
        again = _post(f"{url}/invocations", [paths[2]])  # the server lives on after a refusal
        assert again.status_code == 200 and again.json()["predictions"][0]["label"] == expected[2]


def test_register_refuses_what_it_cannot_do_in_one_line_and_registers_nothing(run_cli, demo_data, workdir):
    # a study with no complete trial
    (workdir / "studies").mkdir()
    optuna.create_study(study_name="empty", storage=f"sqlite:///{workdir / 'studies' / 'empty.db'}")
    code, out, err = run_cli("best", "--study", "empty", "--register", "rocks")
    assert code == 2 and err.count("\n") == 1 and "no complete trial" in err, err

    # names and aliases MLflow refuses: before any training
    for args, what in (
        (("--register", "bad/name"), "not a model name"),
        (("--register", "a:b"), "not a model name"),
        (("--register", "ok", "--alias", "champ ion"), "--alias 'champ ion'"),
        (("--register", "ok", "--alias", "latest"), "reserved"),
    ):
        code, out, err = run_cli("train", "--data", demo_data, "-q", *args, "--set", *_member_sets())
        assert code == 2 and err.count("\n") == 1 and what in err, err
        assert "epoch" not in out + err
    code, _, err = run_cli("blend", "--members", "m1", "m2", "--register", "x/y")
    assert code == 2 and "not a model name" in err

    # an unknown name or alias: one line, no submission
    code, _, err = run_cli("predict", "--model", "models:/nothing@champion", "--data", demo_data, "--out", "sub.csv")
    assert code == 2 and err.count("\n") == 1 and "nothing" in err and not (workdir / "sub.csv").exists()
    code, _, err = run_cli("predict", "--model", "models:/nothing@champion", "--data", demo_data, "--out", "sub.csv", "--tta", "flip")
    assert code == 2 and "carries its own test-time augmentation" in err
    assert _registered_names() == []


def test_train_log_model_links_a_model_to_its_run_and_registers_nothing(run_cli, demo_data, workdir):
    code, _, err = run_cli("train", "--data", demo_data, "-q", "--log-model", "--set", *_member_sets(folds=2))
    assert code == 0, err
    assert _registered_names() == []  # --log-model alone registers nothing
    run = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("rockopt-train").experiment_id])[0]
    assert len(run.outputs.model_outputs) == 1
    code, _, err = run_cli("predict", "--model", f"runs:/{run.info.run_id}/classifier", "--data", demo_data, "--out", "sub.csv")
    assert code == 0, err


def test_a_store_without_a_registry_is_refused_before_training(run_cli, demo_data, workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", (workdir / "file-registry").as_uri())  # MLflow 3 refuses a file registry
    code, out, err = run_cli("train", "--data", demo_data, "-q", "--register", "rocks", "--set", *_member_sets())
    assert code == 2 and err.count("\n") == 1 and "offers no model registry" in err and "file-registry" in err, err
    assert "epoch" not in out + err


def test_a_registration_that_fails_leaves_no_model_version_or_moved_alias(run_cli, demo_data, workdir, monkeypatch):
    code, _, err = run_cli("train", "--data", demo_data, "-q", "--register", "rocks", "--set", *_member_sets(folds=2))
    assert code == 0, err
    client = MlflowClient()
    experiment = client.get_experiment_by_name("rockopt-train").experiment_id
    assert len(client.search_logged_models([experiment])) == 1

    def refuse(self, name, alias, version):
        raise MlflowException("the registry went away", error_code="TEMPORARILY_UNAVAILABLE")

    with monkeypatch.context() as m:
        m.setattr(MlflowClient, "set_registered_model_alias", refuse)
        for name in ("rocks", "fresh"):  # a second version of a name, and a new name
            code, out, err = run_cli("train", "--data", demo_data, "-q", "--register", name, "--set", *_member_sets(folds=2))
            last = err.strip().splitlines()[-1]  # after the training's own lines
            assert code == 2 and err.count("error:") == 1 and last == f"error: --register '{name}': the registry went away", err
    assert _registered_names() == ["rocks"]
    assert [str(v.version) for v in client.search_model_versions("name='rocks'")] == ["1"]
    assert str(client.get_model_version_by_alias("rocks", "champion").version) == "1"
    assert len(client.search_logged_models([experiment])) == 1  # the two models logged for them are gone
