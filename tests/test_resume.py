"""Long runs survive a crash: a run killed with SIGKILL and continued from its last.pt ends
exactly where the same run without the crash ends (weights, validation history)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from rockopt.train.checkpoints import LAST, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# deterministic, on the CPU, with augmentation, label smoothing and dropout: every random stream matters
SETTINGS = [
    "backbone=tests.custom_model:slow_when_asked", "pretrained=false", "epochs=4", "batch_size=16", "image_size=32",
    "num_workers=0", "deterministic=true", "device=cpu", "folds=4", "label_smoothing=0.1", "sampler_mode=hnm",
    "hnm_memory=8", "lr=0.003", "warmup_epochs=1", "gpu_flips=true", "experiment=resume",
]  # fmt: skip


def _env(extra=None) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(extra or {})}


def _train(data: Path, *extra: str, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rockopt", "train", "--data", str(data), "-q"]
    for s in [*SETTINGS, *extra]:
        cmd += ["--set", s]
    return subprocess.Popen(cmd, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_dirs(out: str) -> list[Path]:
    return sorted((Path(out) / "train").iterdir())


def _kill_after_epoch(proc: subprocess.Popen, run_root: Path, epoch: int) -> Path:
    """SIGKILL the run as soon as its last.pt holds EPOCH; returns the run directory."""
    deadline = time.time() + 300
    while time.time() < deadline:
        for last in run_root.glob(f"train/*/{LAST}"):
            if load_checkpoint(last)["epoch"] >= epoch:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return last.parent
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    raise AssertionError("the run never saved its state")


def _val_f1(run_id: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, "val_f1"))


def test_a_train_run_killed_after_epoch_2_and_resumed_ends_as_if_never_killed(workdir, demo_data):
    whole = _train(demo_data, "out_dir=whole")
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-3000:]
    (whole_dir,) = _run_dirs("whole")

    killed = _train(demo_data, "out_dir=killed", env={"ROCKOPT_TEST_SLOW": "1"})  # slow batches: time to kill it
    run_dir = _kill_after_epoch(killed, workdir / "killed", 2)
    state = load_checkpoint(run_dir / LAST)
    assert state["epoch"] == 2
    run_id = state["meta"]["mlflow_run_id"]
    assert MlflowClient().get_run(run_id).info.status == "RUNNING"  # as a killed process leaves it

    resumed = subprocess.run(
        [sys.executable, "-m", "rockopt", "train", "--resume", str(run_dir), "--set", "num_workers=1", "-q"],
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "at epoch 3/4" in resumed.stderr and run_id in resumed.stdout

    a, b = load_checkpoint(whole_dir / LAST), load_checkpoint(run_dir / LAST)
    assert a["epoch"] == b["epoch"] == 4
    for k, w in a["model"].items():
        assert torch.allclose(w.float(), b["model"][k].float(), rtol=0, atol=1e-6), k
    a_run = MlflowClient().get_run(a["meta"]["mlflow_run_id"])
    b_run = MlflowClient().get_run(run_id)  # the same run, continued
    assert b_run.info.status == "FINISHED"
    assert _val_f1(a_run.info.run_id) == _val_f1(run_id) and [s for s, _ in _val_f1(run_id)] == [1, 2, 3, 4]
    assert b_run.data.tags["rockopt.resumed_at_epoch"] == "2" and b_run.data.tags["rockopt.resumed_with"] == "num_workers=1"
    assert b_run.data.metrics["best_val_f1"] == a_run.data.metrics["best_val_f1"]


def test_resume_refuses_settings_that_change_what_the_run_learns(workdir, demo_data, run_cli):
    code, _, err = run_cli("train", "--resume", workdir / "nowhere")
    assert code == 2 and "last.pt" in err and "Traceback" not in err
    code, _, _ = run_cli("train", "--data", demo_data, *sum((["--set", s] for s in SETTINGS), []), "--set", "epochs=1", "-q")
    assert code == 0
    (run_dir,) = _run_dirs("runs")
    code, _, err = run_cli("train", "--resume", run_dir, "--set", "lr=0.1")
    assert code == 2 and "lr" in err.strip().splitlines()[-1]
    code, _, err = run_cli("train", "--resume", run_dir)
    assert code == 2 and "already finished" in err


@pytest.mark.slow  # pytest -m slow
def test_a_cv_killed_in_a_fold_goes_on_from_that_fold_s_last_epoch(workdir, demo_data):
    import numpy as np

    def cv(out: str, env=None) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "rockopt", "cv", "--data", str(demo_data), "--out", out, "-q"]
        for s in [*SETTINGS, "folds=2", "epochs=3"]:
            cmd += ["--set", s]
        return subprocess.Popen(cmd, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    whole = cv("whole")
    assert whole.wait(timeout=600) == 0, whole.communicate()[1][-3000:]
    killed = cv("killed", {"ROCKOPT_TEST_SLOW": "1"})
    deadline = time.time() + 300
    while not (workdir / "killed" / "fold-0" / LAST).is_file() or load_checkpoint(workdir / "killed" / "fold-0" / LAST)["epoch"] < 2:
        assert time.time() < deadline and killed.poll() is None, killed.communicate()[1][-3000:]
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run_id = load_checkpoint(workdir / "killed" / "fold-0" / LAST)["meta"]["mlflow_run_id"]

    again = cv("killed")
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "fold 0: continuing at epoch 3/3" in err
    a, b = np.load(workdir / "whole" / "oof.npz"), np.load(workdir / "killed" / "oof.npz")
    assert np.abs(a["logits"] - b["logits"]).max() <= 1e-5
    run = MlflowClient().get_run(run_id)  # fold 0 went on in its own run
    assert run.info.status == "FINISHED" and [s for s, _ in _val_f1(run_id)] == [1, 2, 3]


@pytest.mark.slow  # pytest -m slow
def test_a_search_trial_whose_worker_was_killed_goes_on_from_its_last_epoch_in_the_retry(workdir, demo_data):
    import optuna
    import yaml

    study = workdir / "tiny.yaml"
    study.write_text(yaml.safe_dump({
        "data": {"path": str(demo_data), "folds": 4, "fold": 0, "image_size": 32},
        "budget": {"n_trials": 1, "max_epochs": 4, "keep_checkpoints": 100},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "median", "n_startup_trials": 0, "n_warmup_steps": 0},
        "fixed": {
            "backbone": "tests.custom_model:slow_when_asked", "pretrained": False, "batch_size": 16, "num_workers": 0, "lr": 0.003,
            "deterministic": True, "gpu_flips": True, "sampler_mode": "hnm", "hnm_memory": 8, "device": "cpu",
        },
        "space": {"label_smoothing": {"type": "float", "low": 0.0, "high": 0.1}},
    }))  # fmt: skip

    def search(where: str, env=None) -> subprocess.Popen:
        (workdir / where).mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "rockopt", "search", "--study", str(study), "-q"]
        return subprocess.Popen(cmd, cwd=workdir / where, env=_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    ref = search("ref")
    assert ref.wait(timeout=600) == 0, ref.communicate()[1][-3000:]
    killed = search("run", {"ROCKOPT_TEST_SLOW": "1"})
    deadline = time.time() + 300
    while not [p for p in (workdir / "run").glob(f"**/trial-0000/{LAST}") if load_checkpoint(p)["epoch"] >= 2]:
        assert time.time() < deadline and killed.poll() is None, killed.communicate()[1][-3000:]
        time.sleep(0.1)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    again = search("run")  # finds trial 0's worker gone: fails it, queues it again, and the retry goes on
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "trial 1 retries trial 0, whose worker died: continuing after its epoch 2" in err

    def trials(where):
        return optuna.load_study(study_name="tiny", storage=f"sqlite:///{workdir / where}/studies/tiny.db").trials

    (a,), (failed, b) = trials("ref"), trials("run")
    assert failed.state.name == "FAIL" and b.state.name == "COMPLETE" and b.params == a.params
    assert b.intermediate_values == a.intermediate_values and len(b.intermediate_values) == 4  # the pruner saw every epoch
    assert b.value == a.value
    wa = load_checkpoint(Path(a.user_attrs["checkpoint"]).with_name(LAST))["model"]
    wb = load_checkpoint(Path(b.user_attrs["checkpoint"]).with_name(LAST))["model"]
    assert all(torch.allclose(wa[k].float(), wb[k].float(), rtol=0, atol=1e-6) for k in wa)
    assert Path(b.user_attrs["checkpoint"]).is_file()  # the best epoch's weights, whichever part it fell in
    assert not Path(failed.user_attrs["checkpoint"]).with_name(LAST).exists()  # consumed, then removed

    run = MlflowClient().get_run(b.user_attrs["mlflow_run_id"])
    assert run.data.tags["rockopt.retries_trial"] == "0" and run.data.tags["rockopt.resumed_at_epoch"] == "2"
    assert "1 MLflow run(s) of workers of this host that are gone ended KILLED" not in err  # the dead search's parent and trial: 2
    assert "2 MLflow run(s) of workers of this host that are gone ended KILLED" in err
    dead = MlflowClient().get_run(failed.user_attrs["mlflow_run_id"])  # the killed worker's: ended by the search after it
    assert dead.info.status == "KILLED" and dead.data.tags["trial_state"] == "FAIL" and "rockopt.error" in dead.data.tags
    client = MlflowClient()
    assert not client.search_runs([run.info.experiment_id], filter_string="attributes.status = 'RUNNING'")
    assert run.data.tags["rockopt.retries_run"] == failed.user_attrs["mlflow_run_id"]
    assert [s for s, _ in _val_f1(run.info.run_id)] == [1, 2, 3, 4]
