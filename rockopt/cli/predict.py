"""`rockopt predict`: a trained model or member on the test images -> a submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import TtaOpt, console


def predict(
    model: Annotated[Path, typer.Option("--model", help="An exported trial or a cv member directory.")],
    data: Annotated[Path, typer.Option("--data", help="Data set with test.csv (and sample_submission.csv).")],
    out: Annotated[Path, typer.Option("--out", help="Submission CSV to write.")],
    tta: TtaOpt = "none",
    save_logits: Annotated[bool, typer.Option("--save-logits", help="Also write the logits and probabilities (.npz) beside it.")] = False,
) -> None:
    """Predict the test images; write the submission in the template's rows and column order."""
    from rockopt.predict import write_predictions

    path, rows = write_predictions(model, data, out, tta, save_logits)
    console().print(f"wrote {path} ({rows} rows)", highlight=False)
