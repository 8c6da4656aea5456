"""`rockopt ui`: the MLflow UI on the store rockopt writes to."""

from __future__ import annotations

from typing import Annotated

import typer


def ui(
    host: Annotated[str, typer.Option(help="Address to serve on; 0.0.0.0 opens it to the network, without authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on (1-65535).")] = 5000,
) -> None:
    """Open the MLflow UI on the tracking store rockopt writes to (MLFLOW_TRACKING_URI, or ./mlruns)."""
    import os
    import sys

    from rockopt.tracking import mask_url, tracking_uri

    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        # a tracking server serves its own UI: nothing to start here
        print(f"the MLflow tracking server {mask_url(uri)} serves the UI: open it in a browser")
        return
    _check_can_serve(host, port)
    # the store goes by environment, not argv: a password in it would show in `ps`
    os.environ["MLFLOW_BACKEND_STORE_URI"] = uri
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)])


def _check_can_serve(host: str, port: int) -> None:
    """A ConfigError naming --port or --host where the UI could not listen: the server started
    by exec would print its traceback and exit 0, or pick a random port for port 0."""
    import errno
    import socket

    from rockopt.errors import ConfigError

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: not a port number (1-65535)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as e:
        raise ConfigError(f"--host {host}: not an address to serve on ({getattr(e, 'strerror', None) or e})") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: a port in TIME_WAIT is free
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ConfigError(f"--port {port}: already in use on {host}; choose another --port") from None
            raise ConfigError(f"--host {host} --port {port}: cannot serve there ({e.strerror})") from None
