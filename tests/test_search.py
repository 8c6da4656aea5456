"""A small real study: pruning, a failing trial, nested MLflow runs, resume, export."""

from __future__ import annotations

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from rockopt.config import load_config

STUDY = {
    "data": {"folds": 4, "fold": 0, "image_size": 32},
    "budget": {"n_trials": 4, "max_epochs": 3, "keep_checkpoints": 1},
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 2},
    "fixed": {"pretrained": False, "batch_size": 16, "num_workers": 0, "lr": 0.003},
    "space": {
        "backbone": ["test_efficientnet", "tests.custom_model:constant", "tests.custom_model:broken", "tests.custom_model:interrupt"],
        "sampler_mode": ["uniform", "hnm"],
        "hnm_memory": {"type": "int", "low": 8, "high": 32, "log": True, "when": {"sampler_mode": "hnm"}},
        "hnm_ratio": {"type": "float", "low": 0.1, "high": 0.5, "when": {"sampler_mode": "hnm"}},
        "label_smoothing": {"type": "float", "low": 0.0, "high": 0.1},
    },
}


@pytest.fixture
def study_file(workdir, demo_data):
    doc = {**STUDY, "data": {**STUDY["data"], "path": str(demo_data)}}
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _enqueue(*trials):
    study = optuna.create_study(study_name="tiny", storage="sqlite:///studies/tiny.db", direction="maximize", load_if_exists=True)
    for params in trials:
        study.enqueue_trial(params)


GOOD = {"backbone": "test_efficientnet", "sampler_mode": "hnm", "hnm_memory": 16, "hnm_ratio": 0.3, "label_smoothing": 0.0}
UNIFORM = {"backbone": "test_efficientnet", "sampler_mode": "uniform", "label_smoothing": 0.0}


def test_study_prunes_fails_nests_and_resumes(run_cli, study_file, workdir):
    (workdir / "studies").mkdir()
    _enqueue(
        GOOD,
        {**UNIFORM, "backbone": "tests.custom_model:constant"},  # worse than trial 0 at epoch 2: pruned
        {**UNIFORM, "backbone": "tests.custom_model:broken"},  # raises: FAIL, the study goes on
        GOOD,  # seeded: repeats trial 0 exactly, so it is above the median and completes
    )
    code, out, err = run_cli("search", "--study", study_file, "-q")
    assert code == 0, err
    assert "2 complete, 1 pruned, 1 failed" in out

    study = optuna.load_study(study_name="tiny", storage="sqlite:///studies/tiny.db")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    # the conditional space: hnm_* only where the sampler mode is hnm
    for t in study.trials:
        has_hnm = {"hnm_memory", "hnm_ratio"} <= set(t.params)
        assert has_hnm == (t.params["sampler_mode"] == "hnm")
        assert not has_hnm or 8 <= t.params["hnm_memory"] <= 32

    client = MlflowClient()
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["rockopt.study"] == "tiny"
    assert parent.data.tags["rockopt.storage_kind"] == "sqlite"
    assert parent.data.tags["rockopt.pruner"].startswith("median(")
    assert parent.data.metrics["n_complete"] == 2 and parent.data.metrics["n_pruned"] == 1 and parent.data.metrics["n_fail"] == 1
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in plots and "plots/intermediate_values.png" in plots

    expected = {0: ("FINISHED", "COMPLETE"), 1: ("KILLED", "PRUNED"), 2: ("FAILED", "FAIL"), 3: ("FINISHED", "COMPLETE")}
    for t in study.trials:
        run = children[f"trial-{t.number}"]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert t.user_attrs["mlflow_run_id"] == run.info.run_id
        assert (run.info.status, run.data.tags["trial_state"]) == expected[t.number]
        assert run.data.tags["trial_number"] == str(t.number)
        assert run.data.params["backbone"] == t.params["backbone"]
        # conditional parameters that did not apply are not logged either
        assert ("hnm_memory" in run.data.params) == ("hnm_memory" in t.params)
    assert [m.step for m in client.get_metric_history(children["trial-0"].info.run_id, "val_f1")] == [1, 2, 3]
    assert children["trial-1"].data.tags["pruned_at_epoch"] == "2"  # the first epoch the pruner may act on
    assert "boom" in children["trial-2"].data.tags["rockopt.error"]
    assert "boom" in study.trials[2].user_attrs["error"]
    assert all(r.info.status != "RUNNING" for r in runs)

    # resume: numbering continues, a second parent run for the second invocation
    _enqueue(UNIFORM)
    code, out, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage="sqlite:///studies/tiny.db")
    assert [t.number for t in study.trials] == [0, 1, 2, 3, 4]
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2
    newest = next(r for r in runs if r.info.run_name == "trial-4")
    assert newest.data.tags["mlflow.parentRunId"] != parent.info.run_id

    # best --export: configs that train --config accepts, with the study's folds file
    code, out, err = run_cli("best", "--study", study_file, "--top", "2", "--export", workdir / "out")
    assert code == 0, err
    exported = sorted((workdir / "out").iterdir())
    assert len(exported) == 2
    cfg = load_config(exported[0] / "config.yaml")
    assert cfg.folds_file.endswith("studies/tiny.folds.csv") and cfg.epochs == 3
    summary = yaml.safe_load((exported[0] / "summary.json").read_text())
    assert summary["study"] == "tiny" and summary["mlflow_run_id"]
    assert client.get_run(summary["mlflow_run_id"]).data.tags["rockopt.exported_to"] == str(exported[0].resolve())
    assert sum((d / "best.pt").is_file() for d in exported) == 1  # keep_checkpoints: 1

    # for scripts: the same trials as records, on stdout, with no warnings around them
    import csv
    import io
    import json
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "rockopt", "best", "--study", study_file, "--top", "2", "-f", "json"], capture_output=True, text=True)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    records = json.loads(p.stdout)
    assert {r["trial"] for r in records} == {int(d.name.split("-")[1]) for d in exported}
    assert records[0]["value"] == study.best_value and records[0]["trial"] == study.best_trial.number
    code, out, _ = run_cli("best", "--study", study_file, "--top", "2", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["trial"]) for r in rows] == [r["trial"] for r in records] and "sampler_mode" in rows[0]
    assert len(list(workdir.glob("**/trial-*/last.pt"))) == 1  # the states to continue from, likewise
    code, _, err = run_cli("train", "--config", exported[0] / "config.yaml", "-q", "--set", "epochs=1")
    assert code == 0, err


@pytest.mark.parametrize("max_epochs, extra", [(2, []), (3, ["--set", "epochs=2"])], ids=["budget", "set-epochs"])
def test_a_trial_that_trained_its_whole_budget_is_not_pruned(run_cli, workdir, demo_data, max_epochs, extra):
    # the pruner may first act at epoch 2, the trial's last one: the worse trial completes instead
    doc = {
        **STUDY,
        "data": {**STUDY["data"], "path": str(demo_data)},
        "budget": {"n_trials": 2, "max_epochs": max_epochs, "keep_checkpoints": 0},
        "pruner": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 2},
    }
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (workdir / "studies").mkdir()
    _enqueue(GOOD, {**UNIFORM, "backbone": "tests.custom_model:constant"})
    code, out, err = run_cli("search", "--study", path, "-q", *extra)
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage="sqlite:///studies/tiny.db")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    assert study.trials[1].value < study.trials[0].value  # the one a median pruner would have stopped
    assert study.trials[1].user_attrs["epochs"] == 2


def test_ctrl_c_fails_the_trial_kills_its_run_and_exits_cleanly(run_cli, study_file, workdir):
    (workdir / "studies").mkdir()
    _enqueue({**UNIFORM, "backbone": "tests.custom_model:interrupt"}, UNIFORM)
    code, out, err = run_cli("search", "--study", study_file, "-q")
    assert code == 130
    assert "run the same command again" in err and "Traceback" not in err
    assert "trial 0 is marked FAIL and queued again" in err
    study = optuna.load_study(study_name="tiny", storage="sqlite:///studies/tiny.db")
    # the second is still queued, and the interrupted one again, to go on from its last epoch
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING", "WAITING"]
    assert study.trials[2].system_attrs["retry_history"] == [0] and study.trials[2].params == study.trials[0].params
    assert "mlflow_run_id" not in study.trials[2].user_attrs  # its own run is made when it starts
    client = MlflowClient()
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("tiny").experiment_id])}
    assert runs["trial-0"].info.status == "KILLED"
    assert next(r for n, r in runs.items() if n.startswith("search-")).info.status == "KILLED"
    code, out, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q")
    assert code == 0, err
    study = optuna.load_study(study_name="tiny", storage="sqlite:///studies/tiny.db")
    assert [(t.number, t.state.name) for t in study.trials] == [(0, "FAIL"), (1, "COMPLETE"), (2, "WAITING")]


def test_baseline_first_makes_trial_0_the_default_recipe(run_cli, workdir, demo_data):
    doc = {
        **STUDY,
        "data": {**STUDY["data"], "path": str(demo_data)},
        "budget": {"n_trials": 2, "max_epochs": 1},
        "baseline_first": True,
        "fixed": {**STUDY["fixed"], "backbone": "test_efficientnet", "hnm_memory": 16},
        "space": {
            "sampler_mode": ["balanced", "hnm", "uniform"],  # the default, uniform, listed last
            "hnm_memory": {"type": "int", "low": 8, "high": 32, "when": {"sampler_mode": "hnm"}},
            "label_smoothing": {"type": "float", "low": 0.05, "high": 0.2},  # the default, 0, outside the range
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},  # the study's fixed 0.003 is its baseline
        },
    }
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    code, _, err = run_cli("search", "--study", workdir / "tiny.yaml")
    assert code == 0, err
    assert "trial 0 started (the default recipe): sampler_mode=uniform" in err
    study = optuna.load_study(study_name="tiny", storage="sqlite:///studies/tiny.db")
    first, second = study.trials
    assert first.params["sampler_mode"] == "uniform" and first.params["lr"] == 0.003
    assert 0.05 <= first.params["label_smoothing"] <= 0.2  # left to the sampler
    assert "rockopt.baseline" not in second.user_attrs
    run = MlflowClient().get_run(first.user_attrs["mlflow_run_id"])
    assert run.data.tags["rockopt.baseline"] == "true"
    code, _, err = run_cli("search", "--study", workdir / "tiny.yaml", "--n-trials", "1")  # resumed: no second baseline
    assert code == 0 and "default recipe" not in err


def test_baseline_params_take_only_values_the_space_allows():
    from rockopt.search.space import baseline_params
    from rockopt.search.study_file import Param

    space = {
        "a": Param(type="categorical", choices=[1, 2]),
        "b": Param(type="float", low=0.0, high=1.0, step=0.25),
        "c": Param(type="int", low=1, high=9, when={"a": 1}),
        "d": Param(type="float", low=0.0, high=1.0),
    }
    assert baseline_params(space, {"a": 1, "b": 0.5, "c": 3, "d": 2.0}) == {"a": 1, "b": 0.5, "c": 3}
    assert baseline_params(space, {"a": 2, "b": 0.3, "c": 3, "d": True}) == {"a": 2}  # c inactive, 0.3 off the grid
