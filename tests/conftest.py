from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("ROCKOPT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
ROCK25 = SHARED / "data" / "rock25"
LITE0 = SHARED / "weights" / "tf_efficientnet_lite0.in1k.safetensors"

# the tiny settings every training test uses: a few seconds per epoch on two cores
TINY = {
    "backbone": "test_efficientnet",
    "pretrained": False,
    "image_size": 48,
    "epochs": 1,
    "batch_size": 16,
    "num_workers": 0,
    "lr": 0.003,
}


@pytest.fixture
def rock25() -> Path:
    if not (ROCK25 / "train").is_dir():
        pytest.skip(f"the rock25 photographs are not at {ROCK25} (set ROCKOPT_SHARED)")
    return ROCK25


@pytest.fixture
def lite0() -> Path:
    if not LITE0.is_file():
        pytest.skip(f"the lite0 weights are not at {LITE0} (set ROCKOPT_SHARED)")
    return LITE0


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch) -> Path:
    """Every test runs in its own directory with its own MLflow store."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("ROCKOPT_CACHE_DIR", str(tmp_path / "image-cache"))
    return tmp_path


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from rockopt.data.synthetic import make_demo_data

    return make_demo_data(tmp_path_factory.mktemp("demo") / "data", per_class=20, n_test=6, size=48)


@pytest.fixture
def run_cli(capsys):
    """Run the rockopt CLI in-process; returns (exit code, stdout, stderr)."""
    from rockopt.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run
