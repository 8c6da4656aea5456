"""With a tracking server (an http URI), stdout still carries results only: MLflow's own
"View run ... at: URL" lines, printed when a run ends, stay off it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.conftest import TINY


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    """A real `mlflow server` on a free port (SQLite backend, artifacts served); its URI."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "served"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.skip(f"the MLflow server did not open port {port}")
            time.sleep(0.3)
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_run_tracked_on_a_server_prints_no_mlflow_links_on_stdout(run_cli, demo_data, mlflow_server, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)  # as a fresh process has it
    sets = [f"{k}={v}" for k, v in {**TINY, "image_size": 32, "folds": 2}.items()]
    code, out, err = run_cli("train", "--data", demo_data, "-q", "--set", *sets)
    assert code == 0, err
    assert "View run" not in out and "View experiment" not in out, out
    assert "best val macro-F1" in out  # the result is still there
