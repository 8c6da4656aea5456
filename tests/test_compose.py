"""The compose file, read as YAML (no Docker engine here): pinned images, the psycopg driver
named in database URLs, health checks, ports on the loopback unless BIND_ADDRESS says otherwise."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def _services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_every_image_is_pinned_to_a_version():
    for name, svc in _services().items():
        image = svc["image"]
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert re.match(r"v?\d+(\.\d+)*$", tag), f"{name}: {image} is not pinned to a version"


def test_database_urls_name_their_driver_and_the_server_needs_no_open_host_list():
    mlflow = _services()["mlflow"]
    command = mlflow["command"]
    assert "--backend-store-uri postgresql+psycopg://" in command  # not SQLAlchemy's default for a bare postgresql://
    assert "sqlalchemy>=2" in command and "--allowed-hosts '*'" not in command
    assert "postgresql+psycopg://" in COMPOSE.read_text().split("services:")[0]  # the ROCKOPT_STORAGE shown to users


def test_servers_have_health_checks_and_dependents_wait_for_them():
    services = _services()
    for name in ("postgres", "mlflow"):
        assert services[name]["healthcheck"]["test"], name
    assert services["mlflow"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_ports_bind_to_the_loopback_by_default():
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
