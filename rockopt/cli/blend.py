"""`rockopt blend`: members' out-of-fold logits -> blend weights and a submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rockopt.cli._options import DataOpt, console
from rockopt.ensemble.members import MEMBERS_ROOT

BlendMethod = Literal["auto", "mean", "greedy", "weights"]  # "auto" and the names of ensemble.methods.METHODS


def blend(
    members: Annotated[list[Path] | None, typer.Option("--members", help="Member directories (repeat the flag, or list them after it).")] = None,
    more: Annotated[list[Path] | None, typer.Argument(help="More member directories.", show_default=False)] = None,
    study: Annotated[str | None, typer.Option("--study", help="Blend the members cv made for this study's best trials.")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="With --study: how many of its best trials.")] = 3,
    study_name: Annotated[str | None, typer.Option("--study-name", help="With --study: its name in the storage (default: the file's name).")] = None,
    method: Annotated[
        BlendMethod, typer.Option("--method", help="The one behind the submission (auto: the best cross-validated, or the best member).")
    ] = "auto",
    offsets: Annotated[bool, typer.Option("--offsets", help="weights: also fit per-class logit offsets.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/blend"),
    data: DataOpt = None,
    storage: Annotated[
        str | None, typer.Option("--storage", envvar="ROCKOPT_STORAGE", show_envvar=True, help="Optuna storage of the study (with --study).")
    ] = None,
    members_root: Annotated[Path, typer.Option("--members-root", help="Where cv members live (with --study).")] = MEMBERS_ROOT,
) -> None:
    """Fit ensemble weights on the members' OOF logits; report in-sample and cross-validated macro-F1; write a submission."""
    import re

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

        optuna_study, _ = load_existing(study, storage, study_name)
        dirs = study_members(optuna_study.study_name, [t.number for t in top_trials(optuna_study, top)], members_root)
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
            key = re.sub(r"[^\w\-. :]", "_", r.name)  # what MLflow allows in a metric name
            metrics[f"oof_f1.{key}"] = r.in_sample
            metrics[f"cv_f1.{key}"] = r.cross_validated
        run.log_metrics(metrics, step=0)
        if result.test_probs is not None:
            root = Path(data) if data else Path(loaded[0].meta["data"])
            files.append(write_submission(root, list(result.members[0].test_ids), test_labels(result), out / "submission.csv"))
        run.log_artifacts(files)
    for f in files:
        out_console.print(f"wrote {f}", highlight=False)
