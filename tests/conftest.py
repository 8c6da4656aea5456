from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
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


@pytest.fixture(scope="session")
def mlflow_tables(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store with its tables made: a new store runs MLflow's migrations,
    about 2 s, and nearly every test has one. Tests of a store made from nothing use their own path."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    db = tmp_path_factory.mktemp("mlflow-tables") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)
    return db


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch, mlflow_tables) -> Path:
    """Every test runs in its own directory with its own MLflow store (a copy of an empty one)."""
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(mlflow_tables, tmp_path / "mlflow.db")
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(args: list[str], ready: str, log: Path, timeout: float = 120):
    """A real `mlflow ARGS...` process on a free port; yields its URL once READY (a path) answers.
    Skips where the port cannot open; the process is ended however the test ends."""
    import requests

    port = free_port()
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}  # `uvicorn` from PATH
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", *args, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if requests.get(url + ready, timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.time() > deadline:
                tail = log.read_text()[-1500:]
                if "address already in use" in tail.lower() or "permission denied" in tail.lower():
                    pytest.skip(f"port {port} cannot open: {tail.splitlines()[-1]}")
                raise AssertionError(f"mlflow {args[0]} did not answer {ready} on port {port}:\n{tail}")
            time.sleep(0.25)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` (SQLite backend, artifacts served through it); its URI."""
    args = ["server", "--host", "127.0.0.1", "--workers", "1", "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination", str(tmp_path / "served")]  # fmt: skip
    with serving(args, "/health", tmp_path / "server.log", timeout=60) as uri:
        yield uri
