"""rockopt as users get it: a wheel, installed without the checkout, runs the demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_a_wheel_install_runs_the_demo_with_the_studies_it_ships(tmp_path):
    src = tmp_path / "src"  # a build writes build/ beside the sources: not into the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".*", "build", "dist", "runs", "mlruns", "*.egg-info", "__pycache__", "studies"))
    shutil.copytree(REPO / "studies", src / "studies", ignore=shutil.ignore_patterns("*.db", "*.journal", "*.csv", "*.log", "*.lock", "__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(wheels)], check=True)
    (wheel,) = wheels.glob("rockopt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"rockopt/studies/{s}.yaml" for s in ("quick", "cpu", "hnm", "balanced", "backbones")} <= set(names)
    assert not [n for n in names if n.startswith("tests/")]

    site = tmp_path / "site"  # the wheel alone; its dependencies come from this environment
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], check=True)
    user = tmp_path / "user"  # no studies/ here, no checkout above
    user.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "MLFLOW_TRACKING_URI": f"sqlite:///{user / 'mlruns' / 'mlflow.db'}",  # a new user's store: made from nothing
        "ROCKOPT_CACHE_DIR": str(tmp_path / "cache"),
    }
    where = subprocess.run([sys.executable, "-c", "import rockopt; print(rockopt.__file__)"], cwd=user, env=env, capture_output=True, text=True)
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    demo = subprocess.run(
        [sys.executable, "-m", "rockopt", "demo", "--n-trials", "1", "--set", "epochs=1", "--set", "image_size=32", "--set", "num_workers=0", "-q"],
        cwd=user, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "1 complete" in demo.stdout and "Traceback" not in demo.stderr
    # no ImageNet weights beside an installed package: the demo says so and trains a backbone that learns from scratch
    assert "note: no local ImageNet weights for tf_efficientnet_lite0: the demo trains resnet10t from scratch" in demo.stderr
    import optuna

    (trial,) = optuna.load_study(study_name="quick-demo-data", storage=f"sqlite:///{user / 'studies' / 'quick-demo-data.db'}").trials
    assert trial.user_attrs["config"]["backbone"] == "resnet10t" and trial.user_attrs["config"]["pretrained_file"] is None
