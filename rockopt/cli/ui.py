from __future__ import annotations

from typing import Annotated

import typer


def ui(port: Annotated[int, typer.Option(help="Port to serve on (127.0.0.1).")] = 5000) -> None:
    """Open the MLflow UI on the same tracking store rockopt writes to."""
    import os
    import sys

    from rockopt.tracking import tracking_uri

    uri = tracking_uri()
    os.execvp(sys.executable, [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port)])
