"""`rockopt blend`: members' out-of-fold logits -> blend weights and a submission."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rockopt.cli._options import AliasOpt, DataOpt, OptionalStudyOpt, RegisterOpt, StorageOpt, StudyNameOpt, console
from rockopt.ensemble.members import MEMBERS_ROOT

BlendMethod = Literal["auto", "mean", "greedy", "weights"]  # "auto" and the names of ensemble.methods.METHODS


def blend(
    members: Annotated[list[Path] | None, typer.Option("--members", help="Member directories (repeat the flag, or list them after it).")] = None,
    more: Annotated[list[Path] | None, typer.Argument(help="More member directories.", show_default=False)] = None,
    study: OptionalStudyOpt = None,
    top: Annotated[int, typer.Option("--top", min=1, help="With --study: how many of its best trials.")] = 3,
    study_name: StudyNameOpt = None,
    method: Annotated[
        BlendMethod, typer.Option("--method", help="The one behind the submission (auto: the best cross-validated, or the best member).")
    ] = "auto",
    offsets: Annotated[bool, typer.Option("--offsets", help="weights: also fit per-class logit offsets.")] = False,
    out: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("runs/blend"),
    data: DataOpt = None,
    storage: StorageOpt = None,
    members_root: Annotated[Path, typer.Option("--members-root", help="Where cv members live (with --study).")] = MEMBERS_ROOT,
    register: RegisterOpt = None,
    alias: AliasOpt = "champion",
) -> None:
    """Fit ensemble weights on the members' OOF logits; report in-sample and cross-validated macro-F1; write a submission.

    The members: --members DIR DIR ..., or with --study the members cv made for the study's --top best trials (--storage and --study-name find the study).
    """  # help text: typer keeps a paragraph's source line breaks, so each is one line
    from rockopt.ensemble.blend import run_blend

    dirs = _member_dirs([*(members or []), *(more or [])], study, top, storage, study_name, members_root)
    err = console(stderr=True)
    done = run_blend(dirs, method, offsets, out, data, log=lambda s: err.print(s, highlight=False), register=register, alias=alias)
    out_console = console()
    out_console.print(_scores_table(done.result))
    if done.result.method.startswith("member:"):
        err.print(
            f"no blend beats the best member out of sample: the submission is {done.result.method.removeprefix('member:')}'s alone",
            highlight=False,
        )
    for f in done.files:
        out_console.print(f"wrote {f}", highlight=False)
    if done.model:
        m = done.model
        out_console.print(
            f"registered the ensemble as {m.name} version {m.version}: {m.registered_uri} "
            f"(model {m.model_id}, {m.size_bytes / 1e6:.1f} MB, linked to run {m.run_id})",
            highlight=False,
        )


def _member_dirs(dirs: list[Path], study: str | None, top: int, storage: str | None, study_name: str | None, root: Path) -> list[Path]:
    from rockopt.errors import ConfigError

    if study and dirs:
        raise ConfigError("give --members or --study, not both")
    if study:
        from rockopt.ensemble.members import study_members
        from rockopt.search.export import load_existing, top_trials

        optuna_study, _ = load_existing(study, storage, study_name)
        dirs = study_members(optuna_study.study_name, [t.number for t in top_trials(optuna_study, top)], root)
    if not dirs:
        raise ConfigError("nothing to blend: give --members DIR DIR ... or --study NAME --top K")
    return dirs


def _scores_table(result):
    from rich.table import Table

    n = len(result.members)
    table = Table(title=f"blend of {n} members (OOF macro-F1; cross-validated = fitted on K-1 folds, scored on the held-out fold)")
    table.add_column("")
    table.add_column("weight", justify="right")
    table.add_column("OOF in-sample", justify="right")
    table.add_column("cross-validated", justify="right")
    for i, r in enumerate(result.rows):
        weight = f"{result.blend.weights[i]:.3f}" if i < n else ("<- used" if r.name == result.method else "")
        table.add_row(r.name, weight, f"{r.in_sample:.4f}", f"{r.cross_validated:.4f}")
    return table
