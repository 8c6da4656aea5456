"""`rockopt cv`: one configuration on every fold -> a blend member."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import ConfigOpt, DataOpt, ExtraSets, QuietOpt, SetOpt, TtaOpt, console
from rockopt.ensemble.members import MEMBERS_ROOT


def cv(
    config: ConfigOpt = None,
    data: DataOpt = None,
    folds_file: Annotated[Path | None, typer.Option("--folds-file", help="Folds file to use (default: the config's).")] = None,
    tta: TtaOpt = "none",
    out: Annotated[Path | None, typer.Option("--out", help=f"Member directory (default: {MEMBERS_ROOT}/<study>-trial-<n>).")] = None,
    set_: SetOpt = None,
    extra: ExtraSets = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a configuration on every fold: out-of-fold logits, test logits, a blend member. Resumable."""
    from rockopt.config import load_config, parse_sets
    from rockopt.cv import run_cv
    from rockopt.ensemble.members import member_meta

    overrides = parse_sets([*(set_ or []), *(extra or [])])
    if data is not None:
        overrides["data"] = str(data)
    cfg = load_config(config, overrides)
    from rockopt.report import Reporter

    reporter = Reporter(bars=not quiet)
    with reporter:
        member = run_cv(cfg, config_path=config, folds_file=folds_file, tta=tta, out=out, progress=reporter.bar(), log=reporter.line)
    meta = member_meta(member)
    folds = "  ".join(f"{f:.4f}" for f in meta["fold_f1"])
    console().print(f"member {member}: OOF macro-F1 {meta['oof_f1']:.4f}  (folds: {folds})", highlight=False)
