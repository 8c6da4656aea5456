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
    import numpy as np

    from rockopt.outputs import ensure_parent
    from rockopt.metrics import softmax
    from rockopt.data.layout import write_submission
    from rockopt.predict import predict_dir

    ensure_parent(out, "--out")  # before the checkpoints are loaded and run
    ids, logits, classes = predict_dir(model, data, tta)
    path = write_submission(data, ids, [classes[i] for i in logits.argmax(1)], out)
    if save_logits:
        np.savez_compressed(path.with_suffix(".npz"), ids=np.asarray(ids), logits=logits, probs=softmax(logits.copy()), classes=np.asarray(classes))
    console().print(f"wrote {path} ({len(ids)} rows)", highlight=False)
