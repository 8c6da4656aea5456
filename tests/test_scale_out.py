"""Many workers on one study: PostgreSQL storage, an MLflow tracking server, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import serving

SECRET = "Sup3rS3cretPW"
STUDY = {
    "data": {"folds": 4, "fold": 0, "image_size": 32},
    "budget": {"n_trials": 9, "max_epochs": 1},
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "fixed": {"backbone": "test_efficientnet", "pretrained": False, "batch_size": 16, "num_workers": 0},
    "space": {"label_smoothing": {"type": "float", "low": 0.0, "high": 0.1}, "sampler_mode": ["uniform", "balanced"]},
}


def _pg_admin():
    import psycopg

    try:
        return psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3", autocommit=True)
    except psycopg.OperationalError as e:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432 ({str(e).strip().splitlines()[0]})")


@pytest.fixture
def pg_db():
    """A fresh database; its URL carries a password (trust auth ignores it) that must never leak."""
    conn = _pg_admin()
    name = f"rockopt_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE DATABASE {name}")
    yield lambda db=name: f"postgresql://postgres:{SECRET}@127.0.0.1:5432/{db}"
    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture
def second_db():
    conn = _pg_admin()
    name = f"rockopt_{uuid.uuid4().hex[:10]}"
    conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    conn.close()


@pytest.fixture
def mlflow_server(second_db, tmp_path):
    """A real `mlflow server`: PostgreSQL backend store, artifacts served through it."""
    args = ["server", "--backend-store-uri", second_db, "--host", "127.0.0.1", "--serve-artifacts",
            "--artifacts-destination", str(tmp_path / "artifacts"), "--workers", "1"]  # fmt: skip
    with serving(args, "/health", tmp_path / "mlflow-server.log", timeout=90) as url:
        yield url


@pytest.fixture
def study_file(workdir, demo_data):
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "data": {**STUDY["data"], "path": str(demo_data)}}, sort_keys=False))
    return path


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(extra=None):
    """The test's environment, with the repository importable (tests.custom_model) from any directory."""
    return {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **(extra or {})}


def _rockopt(*args, env=None, timeout=600, **kw):
    return subprocess.run([sys.executable, "-m", "rockopt", *map(str, args)], env=_env(env),
                          capture_output=True, text=True, timeout=timeout, **kw)


def test_three_workers_share_one_study_and_one_mlflow_server(study_file, pg_db, mlflow_server):
    url = pg_db()
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    p = _rockopt("search", "--study", study_file, "--workers", "3", "--n-trials", "9", "--storage", url, env=env)
    assert p.returncode == 0, p.stderr[-3000:]

    study = optuna.load_study(study_name="tiny", storage=url)
    assert len(study.trials) == 9
    assert sorted(t.number for t in study.trials) == list(range(9))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 3  # three processes did the work

    client = MlflowClient(mlflow_server)
    exps = [e for e in client.search_experiments() if e.name == "tiny"]
    assert len(exps) == 1
    runs = client.search_runs([exps[0].experiment_id])
    parents = {r.info.run_id: r for r in runs if "mlflow.parentRunId" not in r.data.tags}
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 3 and len(children) == 9
    for child in children:
        parent = parents[child.data.tags["mlflow.parentRunId"]]
        assert parent.data.tags["rockopt.worker"] == child.data.tags["rockopt.worker"]  # under its own worker's parent
    assert sorted(int(c.data.tags["trial_number"]) for c in children) == list(range(9))
    assert all(r.info.status == "FINISHED" for r in runs)

    # the storage password: nowhere in the output, params or tags
    assert SECRET not in p.stdout + p.stderr
    for r in runs:
        assert SECRET not in repr(r.data.params) + repr(r.data.tags)
    assert next(iter(parents.values())).data.tags["rockopt.storage"].startswith("postgresql://postgres:***@")

    # and not in the error of a storage that cannot be reached
    bad = _rockopt("search", "--study", study_file, "--n-trials", "1", "--storage", f"postgresql://postgres:{SECRET}@127.0.0.1:1/x")
    assert bad.returncode == 2 and "cannot open storage postgresql://postgres:***@127.0.0.1:1/x" in bad.stderr
    assert SECRET not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow  # pytest -m slow
def test_a_killed_worker_trial_fails_is_retried_and_doctor_repairs_its_run(study_file, pg_db, workdir):
    url = pg_db()
    env = {"ROCKOPT_HEARTBEAT_INTERVAL": "1", "ROCKOPT_HEARTBEAT_GRACE": "3"}
    study = optuna.create_study(study_name="tiny", storage=url, direction="maximize")
    good = {"label_smoothing": 0.0, "sampler_mode": "uniform"}
    slow = {"label_smoothing": 0.05, "sampler_mode": "balanced"}
    study.enqueue_trial(good)
    study.enqueue_trial(slow)
    cmd = [sys.executable, "-m", "rockopt", "search", "--study", str(study_file), "--n-trials", "2", "--storage", url, "-q",
           "--set", "backbone=tests.custom_model:slow_when_asked"]
    worker = subprocess.Popen(cmd, env=_env({**env, "ROCKOPT_TEST_SLOW": "1"}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline:  # wait until trial 0 is done and trial 1 is training
        trials = optuna.load_study(study_name="tiny", storage=url).trials
        if len(trials) == 2 and trials[0].state.name == "COMPLETE" and trials[1].state.name == "RUNNING" and "mlflow_run_id" in trials[1].user_attrs:
            break
        if worker.poll() is not None:
            pytest.fail(f"worker ended early: {worker.stdout.read().decode()[-2000:]}")
        time.sleep(0.5)
    else:
        worker.kill()
        pytest.fail("trial 1 never started")
    time.sleep(0.2)  # the trial has several seconds of batches left
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_run = optuna.load_study(study_name="tiny", storage=url).trials[1].user_attrs["mlflow_run_id"]

    client = MlflowClient()
    assert client.get_run(killed_run).info.status == "RUNNING"
    time.sleep(4)  # past the grace period: the heartbeat has stopped
    listed = _rockopt("doctor", "--study", study_file, "--storage", url, env=env)
    assert listed.returncode == 1 and "trial 1: stuck RUNNING" in listed.stdout and killed_run in listed.stdout

    fixed = _rockopt("doctor", "--study", study_file, "--storage", url, "--repair", env=env)
    assert fixed.returncode == 0 and "ended KILLED" in fixed.stdout
    repaired = client.get_run(killed_run)
    assert repaired.info.status == "KILLED" and repaired.data.tags["trial_state"] == "FAIL" and "rockopt.error" in repaired.data.tags
    exp = client.get_experiment_by_name("tiny")
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp.experiment_id]))
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"]
    assert "mlflow_run_id" not in trials[2].user_attrs and "worker" not in trials[2].user_attrs  # the failed one's are its own

    # a restarted worker runs the failed trial's parameters again, and the study goes on
    p = _rockopt("search", "--study", study_file, "--n-trials", "1", "--storage", url, "-q",
                 "--set", "backbone=tests.custom_model:slow_when_asked", env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == trials[1].params and trials[2].system_attrs["failed_trial"] == 1
    assert trials[0].value is not None  # the completed trial was not lost
    again = _rockopt("doctor", "--study", study_file, "--storage", url, env=env)
    assert again.returncode == 0 and "nothing stuck" in again.stdout
