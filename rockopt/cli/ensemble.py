"""`rockopt cv`, `rockopt predict` and `rockopt blend`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rockopt.cli._options import ConfigOpt, DataOpt, ExtraSets, QuietOpt, SetOpt, console

Tta = Literal["none", "flip", "d4"]  # the names of transforms.TTA_SETS (a test ties them)
BlendMethod = Literal["auto", "mean", "greedy", "weights"]  # "auto" and the names of ensemble.methods.METHODS
TtaOpt = Annotated[Tta, typer.Option("--tta", help="Test-time augmentation: the mean of the model over these views.")]


def cv(
    config: ConfigOpt = None,
    data: DataOpt = None,
    folds_file: Annotated[Path | None, typer.Option("--folds-file", help="Folds file to use (default: the config's).")] = None,
    tta: TtaOpt = "none",
    out: Annotated[Path | None, typer.Option("--out", help="Member directory (default: runs/members/<study>-trial-<n>).")] = None,
    set_: SetOpt = None,
    extra: ExtraSets = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a configuration on every fold: out-of-fold logits, test logits, a blend member. Resumable."""
    from rockopt.config import load_config, parse_sets
    from rockopt.cv import run_cv

    overrides = parse_sets([*(set_ or []), *(extra or [])])
    if data is not None:
        overrides["data"] = str(data)
    cfg = load_config(config, overrides)
    from rockopt.report import Reporter

    reporter = Reporter(bars=not quiet)
    with reporter:
        member = run_cv(cfg, config_path=config, folds_file=folds_file, tta=tta, out=out, progress=reporter.bar(), log=reporter.line)
    import json

    meta = json.loads((member / "member.json").read_text())
    folds = "  ".join(f"{f:.4f}" for f in meta["fold_f1"])
    console().print(f"member {member}: OOF macro-F1 {meta['oof_f1']:.4f}  (folds: {folds})", highlight=False)


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


def blend(
    members: Annotated[list[Path] | None, typer.Option("--members", help="Member directories (repeat the flag, or list them after it).")] = None,
    more: Annotated[list[Path] | None, typer.Argument(help="More member directories.", show_default=False)] = None,
    study: Annotated[str | None, typer.Option("--study", help="Blend the members cv made for this study's best trials.")] = None,
    top: Annotated[int, typer.Option("--top", help="With --study: how many of its best trials.")] = 3,
    method: Annotated[
        BlendMethod, typer.Option("--method", help="The one behind the submission (auto: the best cross-validated, or the best member).")
    ] = "auto",
    offsets: Annotated[bool, typer.Option("--offsets", help="weights: also fit per-class logit offsets.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/blend"),
    data: DataOpt = None,
    storage: Annotated[
        str | None, typer.Option("--storage", envvar="ROCKOPT_STORAGE", show_envvar=True, help="Optuna storage of the study (with --study).")
    ] = None,
    members_root: Annotated[Path, typer.Option("--members-root", help="Where cv members live (with --study).")] = Path("runs/members"),
) -> None:
    """Fit ensemble weights on the members' OOF logits; report in-sample and cross-validated macro-F1; write a submission."""
    from rich.table import Table

    from rockopt.ensemble.blend import blend_members, test_labels, write_blend
    from rockopt.ensemble.members import load_member, study_members
    from rockopt.errors import ConfigError
    from rockopt.outputs import ensure_dir
    from rockopt.data.layout import write_submission
    from rockopt.tracking import Run

    dirs = [*(members or []), *(more or [])]
    if study and dirs:
        raise ConfigError("give --members or --study, not both")
    if study:
        from rockopt.search.export import load_existing, top_trials

        ostudy, _ = load_existing(study, storage)
        dirs = study_members(ostudy.study_name, [t.number for t in top_trials(ostudy, top)], members_root)
    if not dirs:
        raise ConfigError("nothing to blend: give --members DIR DIR ... or --study NAME --top K")
    ensure_dir(out, "--out")  # before the fitting and the scores table, which would read as success
    loaded = [load_member(d) for d in dirs]
    err = console(stderr=True)
    result = blend_members(loaded, method, offsets, log=lambda s: err.print(s, highlight=False))

    table = Table(title=f"blend of {len(loaded)} members (OOF macro-F1; cross-validated = fitted on K-1 folds, scored on the held-out fold)")
    table.add_column("")
    table.add_column("weight", justify="right")
    table.add_column("OOF in-sample", justify="right")
    table.add_column("cross-validated", justify="right")
    for i, r in enumerate(result.rows):
        weight = f"{result.blend.weights[i]:.3f}" if i < len(loaded) else ("<- used" if r.name == result.method else "")
        table.add_row(r.name, weight, f"{r.in_sample:.4f}", f"{r.cross_validated:.4f}")
    out_console = console()
    out_console.print(table)
    if result.method.startswith("member:"):
        err.print(
            f"no blend beats the best member out of sample: the submission is {result.method.removeprefix('member:')}'s alone",
            highlight=False,
        )

    files = write_blend(result, out)
    experiment = loaded[0].meta.get("study") or "rockopt-blend"
    with Run(experiment, f"blend-{method}", tags={"rockopt.folds_fingerprint": loaded[0].folds_fingerprint}) as run:
        run.log_params({"method": method, "used": result.method, "offsets": offsets, "members": ",".join(m.name for m in loaded)})
        metrics = {}
        for r in result.rows:
            key = r.name.replace("/", "_")
            metrics[f"oof_f1.{key}"] = r.in_sample
            metrics[f"cv_f1.{key}"] = r.cross_validated
        run.log_metrics(metrics, step=0)
        if result.test_probs is not None:
            root = Path(data) if data else Path(loaded[0].meta["data"])
            files.append(write_submission(root, list(result.members[0].test_ids), test_labels(result), out / "submission.csv"))
        run.log_artifacts(files)
    for f in files:
        out_console.print(f"wrote {f}", highlight=False)
