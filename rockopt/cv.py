"""`rockopt cv`: one configuration on every fold of the shared folds file -> a blend *member*
(its directory's files: rockopt.ensemble.members).

Resumable: a rerun keeps the finished folds, continues an unfinished one from its last epoch,
and goes on in the member's MLflow run when the process that ran it was killed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rockopt.config import RUNTIME_KEYS, TrainConfig, dump_config, load_config
from rockopt.data.cache import stat_images
from rockopt.data.folds import Folds
from rockopt.data.layout import TrainSet
from rockopt.ensemble.members import (
    assemble_member,
    default_member_dir,
    fold_dir,
    fold_done,
    mark_fold_done,
    member_files,
    oof_macro_f1,
    write_fold_logits,
)
from rockopt.errors import ConfigError
from rockopt.outputs import ensure_dir
from rockopt.predict import predict_logits, test_images
from rockopt.report import params_text
from rockopt.tracked_run import files_digest, prepare_data, run_tags, train_in_run
from rockopt.tracking import WORKER_TAG, DatasetRecord, Run, client, end_left_running, left_running, this_process
from rockopt.train.checkpoints import LAST, load_state

MEMBER_TAG = "rockopt.member"  # the member directory a cv run makes (absolute)


def provenance(config_path: str | Path | None) -> dict:
    """Study and trial of an exported configuration (from the summary.json `best --export` wrote beside it)."""
    if config_path is None:
        return {}
    summary = Path(config_path).parent / "summary.json"
    if not summary.is_file():
        return {}
    doc = json.loads(summary.read_text())
    return {"study": doc.get("study"), "trial": doc.get("trial"), "trial_value": doc.get("value")}


def recipe_changes(cfg: TrainConfig, config_path: str | Path) -> dict:
    """The settings of CFG that differ from the exported configuration's and change what is learned."""
    exported = load_config(config_path, {}).flat()
    return {k: v for k, v in cfg.flat().items() if k not in RUNTIME_KEYS | {"data", "folds_file", "experiment"} and exported.get(k) != v}


def testing_dataset(root: Path, ids: Sequence[str], paths: Sequence[str]) -> DatasetRecord:
    """The test images a fold predicts, as an MLflow dataset input: test.csv's IDs and their files."""
    # Path(): PATHS are spelled from the data directory already (absolute, or from here)
    digest = files_digest("testing\n", ids, stat_images(Path(), paths))
    root = root.resolve()
    return DatasetRecord("testing", root.name, digest, str(root), len(ids), columns=("id", "path"))


def member_run(experiment: str, name: str, tags: dict[str, str], log=print) -> Run:
    """The member's MLflow run: the one a killed cv of the member left RUNNING, continued (the
    runs of its folds that it left RUNNING end KILLED), or else a new one."""
    left = left_running(experiment, {MEMBER_TAG: tags[MEMBER_TAG]})
    if not left:
        return Run(experiment, f"cv-{name}", tags={**tags, WORKER_TAG: this_process()})
    mlflow = client()
    *older, last = left
    gone = last.data.tags[WORKER_TAG]
    for run in older + left_running(experiment, {"mlflow.parentRunId": last.info.run_id}):
        mlflow.set_tag(run.info.run_id, "rockopt.repaired", f"cv: its process {run.data.tags[WORKER_TAG]} is gone")
        end_left_running(mlflow, run.info.run_id, run.data.tags)
    log(f"note: continuing MLflow run {last.info.run_id}, left running by cv process {gone}, which is gone")
    run = Run.reopen(last.info.run_id)
    run.set_tags({WORKER_TAG: this_process(), "rockopt.continued_after": gone})
    return run


def run_cv(
    cfg: TrainConfig,
    *,
    config_path: str | Path | None = None,
    folds_file: str | Path | None = None,
    tta: str = "none",
    out: str | Path | None = None,
    progress=True,
    log=print,
) -> Path:
    """Train every fold not finished yet, then assemble the member. Returns its directory."""
    cfg = cfg.model_copy(update={"save_checkpoint": True})
    data, folds = prepare_data(cfg, folds_file)
    origin = provenance(config_path)
    if origin:
        changed = recipe_changes(cfg, config_path)
        if changed:  # e.g. a trial's recipe trained longer: the member says so, and is named apart
            origin["set"] = changed
            log(f"note: --set changes trial {origin.get('trial')}'s recipe: {params_text(changed)} (recorded in member.json)")
    out = ensure_dir(out, "--out") if out else ensure_dir(default_member_dir(cfg, config_path, origin), "out_dir")
    dump_config(cfg, out / "config.yaml")
    test_ids, test_paths = test_images(data.root) if (data.root / "test.csv").is_file() else ([], [])
    testing = testing_dataset(data.root, test_ids, test_paths) if test_paths else None

    tags = {MEMBER_TAG: str(out.resolve()), "rockopt.tta": tta, **run_tags(data, folds, -1)}
    tags.pop("rockopt.fold")
    tags.update({f"rockopt.{k}": str(v) for k, v in origin.items() if v is not None})
    with member_run(cfg.experiment, out.name, tags, log) as parent:
        changed = parent.log_missing_params({k: v for k, v in cfg.flat().items() if k != "fold"} | {"tta": tta})
        if changed:  # a continued run keeps its first values; runtime settings may change
            parent.set_tags({"rockopt.resumed_with": params_text(changed)})
        for k in range(folds.k):
            done = fold_done(out, k)
            if done is not None:
                if done.get("tta") != tta:
                    raise ConfigError(f"{out}: its finished folds used --tta {done.get('tta')}; resume with the same, or use another --out")
                log(f"fold {k}: already done, kept")
                continue
            f1 = _cv_fold(cfg, data, folds, k, out, parent.id, tta, test_paths, testing, progress, log)
            log(f"fold {k}: val macro-F1 {f1:.4f} (TTA {tta})")
        meta = assemble_member(out, data, folds, tta, test_ids, origin, parent.id)
        parent.log_metrics({"oof_f1": meta["oof_f1"], **{f"fold_{i}_f1": f for i, f in enumerate(meta["fold_f1"])}}, step=0)
        parent.log_artifacts(member_files(out), "member")
    return out


def _cv_fold(
    cfg: TrainConfig, data: TrainSet, folds: Folds, k: int, out: Path, parent_id: str, tta: str,
    test_paths: list[str], testing: DatasetRecord | None, progress, log,
) -> float:
    """Train fold K (from its last epoch, when a crash cut it short) in its own MLflow run, then
    predict with its best checkpoint; marks it done and returns its validation macro-F1."""
    fold = fold_dir(out, k)
    state = load_state(fold / LAST) if (fold / LAST).is_file() else None
    if state is not None:
        log(f"fold {k}: continuing at epoch {state['epoch'] + 1}/{cfg.epochs}")
        fold_run = Run.reopen(state["meta"]["mlflow_run_id"])
        fold_run.set_tags({WORKER_TAG: this_process()})
    else:
        fold_run = Run(cfg.experiment, f"{out.name}-f{k}", tags={**run_tags(data, folds, k), WORKER_TAG: this_process()}, parent_run_id=parent_id)
    with fold_run as run:
        def epoch_line(res) -> None:
            log(f"fold {k} epoch {res.epoch}/{cfg.epochs}  train_loss {res.train_loss:.4f}  val_f1 {res.val_f1:.4f}  {res.seconds:.1f} s")

        result = train_in_run(run, cfg, data, folds, k, fold, on_epoch=epoch_line, progress=progress, resume=state)
        _, val = folds.split(k)
        # the best epoch's checkpoint, with the member's TTA, on the fold's validation and the test images
        paths = data.abs_paths()
        val_logits, val_ok = predict_logits(result.checkpoint, [paths[i] for i in val], tta, data_root=data.root)
        test_logits = None
        if testing is not None:
            run.log_datasets([testing])
            test_logits = predict_logits(result.checkpoint, test_paths, tta, data_root=data.root)[0]
        write_fold_logits(out, k, val, val_logits, val_ok, test_logits)
        f1 = oof_macro_f1(val_logits, data.labels[val], len(data.classes))
        run.log_metrics({"oof_fold_f1": f1}, step=k)
    mark_fold_done(out, k, f1, tta, run.id)
    return f1
