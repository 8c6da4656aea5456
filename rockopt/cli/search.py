"""`rockopt search`, `rockopt best` and `rockopt doctor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from rockopt.cli._options import (
    AliasOpt,
    DataOpt,
    ExtraSets,
    QuietOpt,
    RegisterOpt,
    SetOpt,
    StorageOpt,
    StudyNameOpt,
    StudyOpt,
    Tta,
    console,
)


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
) -> None:
    """Run an Optuna study over how a backbone is trained; every trial is an MLflow child run."""
    import os

    from rockopt.cli.show import search_summary
    from rockopt.config import parse_sets
    from rockopt.report import next_step
    from rockopt.search.request import resolve_request
    from rockopt.search.runner import run_request
    from rockopt.search.workers import launch_workers

    gpu_ids = [g.strip() for g in gpus.split(",") if g.strip()] if gpus else None
    if gpu_ids and workers == 1:
        workers = len(gpu_ids)
    if gpu_ids and workers == 1:  # one GPU: this process is its worker (CUDA reads the variable when it starts)
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_ids[0]
    overrides = parse_sets([*(set_ or []), *(extra or [])])
    request = resolve_request(
        study, data=data, n_trials=n_trials, timeout=timeout, storage=storage, study_name=study_name, overrides=overrides, workers=workers
    )
    if workers > 1:
        err = console(stderr=True)
        code = launch_workers(request, workers, gpu_ids, say=lambda text: err.print(text, highlight=False))
        if code:
            raise typer.Exit(code)
        return
    search_summary(run_request(request, progress=not quiet))
    next_step(f"rockopt best --study {study} --top 3 --export best" + (f" --study-name {request.name}" if study_name else ""))


def best(
    study: StudyOpt,
    top: Annotated[int, typer.Option("--top", min=1, help="How many trials to show / export.")] = 5,
    export: Annotated[Path | None, typer.Option("--export", help="Write config, checkpoint and summary per trial here.")] = None,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    format_: Annotated[
        Literal["table", "json", "csv"], typer.Option("--format", "-f", help="table for people; json or csv for scripts (on stdout).")
    ] = "table",
    register: RegisterOpt = None,
    alias: AliasOpt = "champion",
    tta: Annotated[Tta, typer.Option("--tta", help="With --register: the model's test-time augmentation.")] = "none",
) -> None:
    """The best complete trials of a study; --export writes them for `train --config` and `cv`; --register makes the best an MLflow model."""
    from rockopt.cli.show import trials_table
    from rockopt.report import next_step
    from rockopt.search.export import best_trials, trial_records

    if register is not None:
        from rockopt.model_registry import check_registration

        check_registration(register, alias)  # before anything is exported
    b = best_trials(study, top, storage=storage, study_name=study_name, export=export)
    registered = _register_best(study, register, alias, tta, storage, study_name) if register is not None else None
    if format_ != "table":
        _print_records(trial_records(b), b.params, format_)
        if registered:
            console(stderr=True).print(registered, highlight=False)  # stdout holds the records only
        return
    out = console()
    out.print(trials_table(b))
    if not b.trials:
        out.print("no complete trial yet")
    for d in b.exported:
        out.print(f"exported {d}", highlight=False)
    if registered:
        out.print(registered, highlight=False)
    if b.exported:
        name = f" --study-name {study_name}" if study_name else ""
        next_step(
            f"rockopt cv --config {b.exported[0]}/config.yaml (and each other exported trial's), then",
            f"rockopt blend --study {study}{name} --top {len(b.exported)} --out runs/blend",
        )


def _register_best(study: str, name: str, alias: str, tta: str, storage: str | None, study_name: str | None) -> str:
    """Register the best trial; the line that says what was registered."""
    from rockopt.search.export import register_best

    trial, model = register_best(study, name, alias, tta, storage, study_name)
    return (
        f"registered trial {trial.number} as {model.name} version {model.version}: {model.registered_uri} "
        f"(model {model.model_id}, {model.size_bytes / 1e6:.1f} MB, linked to run {model.run_id})"
    )


def _print_records(rows: list[dict], names: list[str], fmt: str) -> None:
    import csv
    import json
    import sys

    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    writer = csv.DictWriter(sys.stdout, fieldnames=["study", "rank", "trial", "value", "epochs", "mlflow_run_id", *names])
    writer.writeheader()
    writer.writerows(rows)


def doctor(
    study: StudyOpt,
    storage: StorageOpt = None,
    study_name: StudyNameOpt = None,
    repair_: Annotated[bool, typer.Option("--repair", help="Fail stuck trials (re-queued once) and end stuck runs KILLED.")] = False,
) -> None:
    """Trials stuck RUNNING with no live worker, and MLflow runs left RUNNING; --repair fixes them."""
    from rockopt.search.doctor import examine

    d = examine(study, storage, study_name, fix=repair_)
    out = console()
    for n, why in d.stuck_trials:
        out.print(f"trial {n}: stuck RUNNING ({why})", highlight=False)
    for run_id, name, why in d.stuck_runs:
        out.print(f"MLflow run {name} ({run_id}): left RUNNING ({why})", highlight=False)
    if not d.stuck_trials and not d.stuck_runs:
        out.print(f"study {d.study.study_name}: nothing stuck")
        return
    if repair_:
        out.print(f"repaired: {len(d.stuck_trials)} trial(s) marked FAIL and queued again, {len(d.stuck_runs)} run(s) ended KILLED")
    else:
        out.print("run again with --repair to fix them")
        raise typer.Exit(1)
