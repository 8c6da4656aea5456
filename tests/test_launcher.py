"""`rockopt search --workers N`: the workers stop with their launcher, even one killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml
from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
STUDY = {
    "data": {"folds": 4, "fold": 0, "image_size": 32},
    "budget": {"n_trials": 40, "max_epochs": 1},
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "fixed": {"pretrained": False, "batch_size": 16, "num_workers": 0, "backbone": "tests.custom_model:slow_when_asked"},
    "space": {"label_smoothing": {"type": "float", "low": 0.0, "high": 0.1}},
}


def _journal_storage(path: Path) -> optuna.storages.BaseStorage:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(path)))


def _journal_study(path: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny", storage=_journal_storage(path))


def _alive(pid: int) -> bool:
    """Whether PID runs (a zombie nobody reaped yet has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_workers_stop_cleanly_when_their_launcher_is_killed(workdir, demo_data):
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "data": {**STUDY["data"], "path": str(demo_data)}}, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "ROCKOPT_TEST_SLOW": "1"}
    log = open(workdir / "launcher.log", "w")
    launcher = subprocess.Popen(
        [sys.executable, "-m", "rockopt", "search", "--study", str(path), "--workers", "2", "-q"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    journal = workdir / "studies" / "tiny.journal"
    pids: set[int] = set()
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # until both workers are inside a trial
            if journal.is_file() and "tiny" in optuna.study.get_all_study_names(_journal_storage(journal)):
                running = [t for t in _journal_study(journal).trials if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]
                pids = {int(t.user_attrs["worker"].split(":")[1]) for t in running}
                if len(pids) == 2:
                    break
            assert launcher.poll() is None, (workdir / "launcher.log").read_text()[-3000:]
            time.sleep(0.5)
        else:
            raise AssertionError("the two workers never started a trial: " + (workdir / "launcher.log").read_text()[-3000:])
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()

        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.5)
        left = [p for p in pids if _alive(p)]
        assert not left, f"workers {left} outlived their launcher"
    finally:
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        log.close()

    trials = _journal_study(journal).trials
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    assert len([t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("error") == "interrupted"]) == 2
    assert len([t for t in trials if t.state.name == "WAITING"]) == 2  # queued again, to go on from their last epoch
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    output = (workdir / "launcher.log").read_text()
    assert output.count("run the same command again to continue the study") == 2, output[-3000:]  # each stopped as on SIGTERM
