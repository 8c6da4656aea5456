"""`rockopt ui`: the MLflow UI on the store rockopt writes to."""

from __future__ import annotations

from typing import Annotated

import typer


def ui(
    host: Annotated[str, typer.Option(help="Address to serve on; 0.0.0.0 opens it to the network, without authentication.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 5000,
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
    # the store goes by environment, not argv: a password in it would show in `ps`
    os.environ["MLFLOW_BACKEND_STORE_URI"] = uri
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--host", host, "--port", str(port)])
