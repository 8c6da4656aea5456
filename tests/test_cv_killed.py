"""A `rockopt cv` killed with SIGKILL leaves no MLflow run RUNNING once its rerun has finished
the member: the rerun continues in the member's run, and ends what the dead process left open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[1]
SETTINGS = [
    "backbone=tests.custom_model:tiny_cnn", "pretrained=false", "epochs=2", "batch_size=16", "image_size=32",
    "num_workers=0", "device=cpu", "folds=3", "experiment=cv-killed",
]  # fmt: skip


def _cv(data: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rockopt", "cv", "--data", str(data), "--out", str(out), "-q"]
    for s in SETTINGS:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_cv_killed_after_a_fold_leaves_no_run_running_after_its_rerun(workdir, demo_data):
    out = workdir / "member"
    killed = _cv(demo_data, out)
    deadline = time.time() + 300
    while not (out / "fold-0" / "done.json").is_file():
        assert time.time() < deadline and killed.poll() is None, killed.communicate()[1][-3000:]
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()

    again = _cv(demo_data, out)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    assert "fold 0: already done" in err

    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("cv-killed").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs if r.info.status == "RUNNING"] == []
    # the rerun went on in the member's run: one parent, every fold's finished run under it
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [r for r in runs if r.info.status == "FINISHED" and r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert sorted(r.data.tags["rockopt.fold"] for r in finished) == ["0", "1", "2"]
