"""`rockopt search` and `rockopt best`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rockopt.cli._options import DataOpt, ExtraSets, QuietOpt, SetOpt, StorageOpt, StudyNameOpt, StudyOpt, console



def search(
    study: StudyOpt,
    data: DataOpt = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", help="Trials to run now (default: the study's budget).")] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Stop starting trials after this many seconds.")] = None,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    set_: SetOpt = None,
    extra: ExtraSets = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes on this host (one per GPU with --gpus).")] = 1,
    gpus: Annotated[str | None, typer.Option("--gpus", help="GPU ids, e.g. 0,1,2,3: one worker pinned to each.")] = None,
    quiet: QuietOpt = False,
    hint: Annotated[bool, typer.Option(hidden=True)] = True,
) -> None:
    """Run an Optuna study over how a backbone is trained; every trial is an MLflow child run."""
    from rockopt.config import parse_sets
    from rockopt.search.runner import run_search

    gpu_ids = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    if gpu_ids and workers == 1:
        workers = len(gpu_ids)
    if workers > 1:
        _launch_workers(study, data, n_trials, timeout, storage, study_name, [*(set_ or []), *(extra or [])], workers, gpu_ids)
        return
    from rockopt.report import next_step, safe_print

    s = run_search(
        study,
        data=data,
        n_trials=n_trials,
        timeout=timeout,
        storage=storage,
        study_name=study_name,
        overrides=parse_sets([*(set_ or []), *(extra or [])]),
        progress=not quiet,
    )
    c = s.counts
    line = f"study {s.study_name}: {c['COMPLETE']} complete, {c['PRUNED']} pruned, {c['FAIL']} failed"
    if s.best_trial is not None:
        line += f"; best {s.best_value:.4f} (trial {s.best_trial})"
    # plain writes that survive a reader gone with the same Ctrl-C (`| tee`): the exit code stays 130
    safe_print(line + f"; MLflow parent run {s.parent_run_id}")
    if s.interrupted:
        what = f"trial {s.requeued} is marked FAIL and queued again; " if s.requeued is not None else ""
        safe_print(f"interrupted: {what}run the same command again to continue the study", err=True)
        raise typer.Exit(130)
    if hint:
        next_step(f"rockopt best --study {study} --top 3 --export best" + (f" --study-name {s.study_name}" if study_name else ""))


def _launch_workers(study, data, n_trials, timeout, storage, study_name, sets, workers, gpu_ids) -> None:
    import os

    from rockopt.config import parse_sets
    from rockopt.search.doctor import diagnose, repair
    from rockopt.search.export import load_existing
    from rockopt.search.locks import study_lock
    from rockopt.search.runner import check_request
    from rockopt.search.storage import describe_storage, open_storage, resolve_storage
    from rockopt.search.study_file import load_study_file, with_overrides
    from rockopt.search.workers import launch
    from rockopt.tracking import experiment_id

    file_spec, source = load_study_file(study)  # fail here, once, on a bad file or request
    spec = with_overrides(file_spec, parse_sets(sets), source)
    check_request(spec, data, n_trials, timeout)
    name = study_name or source.stem
    url = resolve_storage(storage, name, workers)
    with study_lock(url, name):
        open_storage(url)  # create the tables once, before the workers race for them
    experiment_id(name)  # the same for the MLflow store and the study's experiment
    total = n_trials if n_trials is not None else spec.budget.n_trials
    args = ["--study", str(study), "--study-name", name, "-q"]
    if data is not None:
        args += ["--data", str(data)]
    if timeout is not None:
        args += ["--timeout", str(timeout)]
    for item in sets:
        args += ["--set", item]
    os.environ["ROCKOPT_STORAGE"] = url  # the workers inherit it: a password never shows in `ps`
    err = console(stderr=True)
    err.print(f"{workers} workers on study {name} ({describe_storage(url)}), {total} trials", highlight=False)
    code, died = launch(args, total, workers, gpu_ids)
    if died:
        for worker, pid, sig in died:
            err.print(f"worker {worker} (pid {pid}) was killed by {sig}", highlight=False)
        optuna_study, _ = load_existing(study, url, name)
        d = diagnose(optuna_study)
        repair(d)
        err.print(
            f"its trials were marked FAIL and queued again ({len(d.stuck_trials)}), its MLflow runs ended KILLED "
            f"({len(d.stuck_runs)}); run the same command again to continue the study",
            highlight=False,
        )
    if code:
        raise typer.Exit(code)


def best(
    study: StudyOpt,
    top: Annotated[int, typer.Option("--top", min=1, help="How many trials to show / export.")] = 5,
    export: Annotated[Path | None, typer.Option("--export", help="Write config, checkpoint and summary per trial here.")] = None,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    format_: Annotated[
        Literal["table", "json", "csv"], typer.Option("--format", "-f", help="table for people; json or csv for scripts (on stdout).")
    ] = "table",
) -> None:
    """The best complete trials of a study; --export writes them for `train --config` and `cv`."""
    from collections import Counter

    from rich.table import Table

    from rockopt.outputs import ensure_dir
    from rockopt.search.export import export_trials, load_existing, top_trials

    if export:
        ensure_dir(export, "--export")  # before the table: nothing printed as if it will succeed
    optuna_study, url = load_existing(study, storage, study_name)
    trials = top_trials(optuna_study, top)
    counts = Counter(t.state.name for t in optuna_study.get_trials(deepcopy=False))
    names = sorted({k for t in trials for k in t.params})
    if format_ != "table":
        _print_records(optuna_study.study_name, trials, names, format_)
        if export:
            export_trials(optuna_study, trials, export, url)
        return
    table = Table(title=f"study {optuna_study.study_name}: " + ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())))
    for col in ("#", "trial", "value", "epochs", *names, "MLflow run"):
        table.add_column(col, justify="right" if col in ("#", "trial", "value", "epochs") else "left")
    for rank, t in enumerate(trials, 1):
        cells = [_fmt(t.params.get(k, "")) for k in names]
        table.add_row(str(rank), str(t.number), f"{t.value:.4f}", str(t.user_attrs.get("epochs", "")), *cells, t.user_attrs.get("mlflow_run_id", ""))
    out = console()
    out.print(table)
    if not trials:
        out.print("no complete trial yet")
    if export:
        dirs = export_trials(optuna_study, trials, export, url)
        for d in dirs:
            out.print(f"exported {d}", highlight=False)
        if dirs:
            from rockopt.report import next_step

            name = f" --study-name {study_name}" if study_name else ""
            next_step(
                f"rockopt cv --config {dirs[0]}/config.yaml (and each other exported trial's), then",
                f"rockopt blend --study {study}{name} --top {len(dirs)} --out runs/blend",
            )


def _print_records(study: str, trials, names: list[str], fmt: str) -> None:
    """One record per trial: rank, trial, value, epochs, MLflow run id, then its parameters."""
    import csv
    import json
    import sys

    rows = [
        {"study": study, "rank": rank, "trial": t.number, "value": t.value, "epochs": t.user_attrs.get("epochs"),
         "mlflow_run_id": t.user_attrs.get("mlflow_run_id", ""), **{k: t.params.get(k) for k in names}}
        for rank, t in enumerate(trials, 1)
    ]  # fmt: skip
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=["study", "rank", "trial", "value", "epochs", "mlflow_run_id", *names])
    writer.writeheader()
    writer.writerows(rows)


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def doctor(
    study: StudyOpt,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    repair_: Annotated[bool, typer.Option("--repair", help="Fail stuck trials (re-queued once) and end stuck runs KILLED.")] = False,
) -> None:
    """Trials stuck RUNNING with no live worker, and MLflow runs left RUNNING; --repair fixes them."""
    from rockopt.search.doctor import diagnose, repair
    from rockopt.search.export import load_existing

    optuna_study, url = load_existing(study, storage, study_name)
    d = diagnose(optuna_study)
    out = console()
    for n, why in d.stuck_trials:
        out.print(f"trial {n}: stuck RUNNING ({why})", highlight=False)
    for run_id, name, why in d.stuck_runs:
        out.print(f"MLflow run {name} ({run_id}): left RUNNING ({why})", highlight=False)
    if not d.stuck_trials and not d.stuck_runs:
        out.print(f"study {optuna_study.study_name}: nothing stuck")
        return
    if repair_:
        repair(d)
        out.print(f"repaired: {len(d.stuck_trials)} trial(s) marked FAIL and queued again, {len(d.stuck_runs)} run(s) ended KILLED")
    else:
        out.print("run again with --repair to fix them")
        raise typer.Exit(1)
