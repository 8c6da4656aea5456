"""`rockopt demo`: the whole path on a laptop CPU in a few minutes, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import DataOpt, QuietOpt, SetOpt, console


def demo(
    data: DataOpt = None,
    n_trials: Annotated[int, typer.Option("--n-trials", help="Trials of the quick study.")] = 4,
    out: Annotated[Path, typer.Option("--out", help="Where generated data goes.")] = Path("runs"),
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Check a data set (generated when --data is not given), run the quick study on it, show the best trials."""
    import os

    from rockopt.cli.show import check_report, search_summary, trials_table
    from rockopt.config import parse_sets
    from rockopt.data.check import check_dataset
    from rockopt.data.synthetic import make_demo_data
    from rockopt.search.export import best_trials
    from rockopt.search.runner import run_search

    if data is None:
        data = out / "demo-data"
        if not (data / "train").is_dir():
            make_demo_data(data)
    report = check_dataset(data, workers=os.cpu_count() or 1, progress=not quiet)
    shown = console()
    check_report(report, shown)
    if not report.ok:
        raise typer.Exit(1)
    shown.print("[green]ok")
    name = f"quick-{Path(data).resolve().name}"  # one study (and folds file) per data set
    sets = parse_sets([*(set_ or []), *_without_local_weights(set_ or [])])
    search_summary(run_search("quick", data=data, n_trials=n_trials, study_name=name, overrides=sets, progress=not quiet))
    console().print(trials_table(best_trials("quick", 3, study_name=name), title=False))  # the summary line said the counts


# learns the demo's images from scratch in the quick study's 3 epochs (tf_efficientnet_lite0
# from scratch stays at chance there: its head starts with logits too large for 24 steps)
FROM_SCRATCH = "resnet10t"


def _without_local_weights(sets: list[str]) -> list[str]:
    """The quick study uses local ImageNet weights where it finds them (a checkout next to them);
    an installed package has none: the demo then trains a backbone that learns from scratch."""
    from rockopt.config import parse_sets
    from rockopt.report import Reporter
    from rockopt.search.study_file import base_settings, load_study_file

    if {"backbone", "pretrained", "pretrained_file"} & set(parse_sets(sets)):
        return []  # the user chose
    spec, _ = load_study_file("quick")
    weights = base_settings(spec).get("pretrained_file")
    if not weights or Path(weights).exists():
        return []
    Reporter(bars=False).line(
        f"note: no local ImageNet weights for {spec.fixed['backbone']}: the demo trains {FROM_SCRATCH} from scratch "
        "(--set pretrained_file=PATH uses a weights file)"
    )
    return [f"backbone={FROM_SCRATCH}", "pretrained_file=null"]
