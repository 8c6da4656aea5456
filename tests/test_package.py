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
    shutil.copytree(REPO / "rockopt" / "studies", src / "rockopt" / "studies")
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
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
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
