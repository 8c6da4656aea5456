"""`rockopt predict`: a trained model, a member or an MLflow model on the test images -> a submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import TtaOpt, console


def predict(
    model: Annotated[
        str, typer.Option("--model", help="An exported trial or a cv member directory, or an MLflow model: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/classifier.")
    ],
    data: Annotated[Path, typer.Option("--data", help="Data set with test.csv (and sample_submission.csv).")],
    out: Annotated[Path, typer.Option("--out", help="Submission CSV to write.")],
    tta: TtaOpt = "none",
    save_logits: Annotated[
        bool, typer.Option("--save-logits", help="Also write the logits and probabilities (.npz) beside it (an MLflow model: probabilities).")
    ] = False,
) -> None:
    """Predict the test images; write the submission in the template's rows and column order."""
    from rockopt.model_registry import is_model_uri

    if is_model_uri(model):
        from rockopt.errors import ConfigError
        from rockopt.model_registry import write_uri_predictions

        if tta != "none":
            raise ConfigError(f"--tta {tta}: an MLflow model carries its own test-time augmentation")
        path, rows = write_uri_predictions(model, data, out, save_logits)
    else:
        from rockopt.predict import write_predictions

        path, rows = write_predictions(model, data, out, tta, save_logits)
    console().print(f"wrote {path} ({rows} rows)", highlight=False)
