"""`rockopt ui` refuses a port it cannot serve on with one line, before starting anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _ui(*args: str) -> subprocess.CompletedProcess:
    # a subprocess: the command replaces its process with the MLflow UI when it starts one
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "rockopt", "ui", *args], check=False, env=env, capture_output=True, text=True, timeout=120)


def _one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr[-3000:])
    lines = [l for l in p.stderr.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("port", ["99999", "-1", "0"])
def test_a_port_out_of_range_is_one_line_naming_port(port):
    _one_line_error(_ui("--port", port), "--port", port)


def test_a_port_in_use_is_one_line_naming_it():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        _one_line_error(_ui("--port", port), "--port", port, "in use")
