"""`rockopt cv`: one configuration on every fold of the shared folds file -> a blend *member*.

A member directory holds:
  member.json   classes, folds fingerprint, per-fold and OOF macro-F1, TTA, provenance (study, trial)
  config.yaml   the configuration
  oof.npz       ids (relative paths, folds-file order), labels, fold, logits (float32, one row per image)
  test.npz      ids (test.csv order), logits: mean over the fold models
  fold-K/       best.pt, last.pt (the state after the latest epoch: an unfinished fold goes on
                from it), the fold's MLflow files, and done.json once the fold is finished
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from rockopt.config import RUNTIME_KEYS, TrainConfig, dump_config, load_config
from rockopt.data.folds import Folds
from rockopt.data.layout import TrainSet
from rockopt.errors import ConfigError
from rockopt.outputs import ensure_dir
from rockopt.report import params_text
from rockopt.tracked_run import prepare_data, run_tags, train_in_run
from rockopt.metrics import confusion, macro_f1
from rockopt.predict import predict_logits, test_images
from rockopt.tracking import Run
from rockopt.train.checkpoints import LAST, load_state


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


def default_member_dir(cfg: TrainConfig, config_path: str | Path | None, origin: dict) -> Path:
    if origin.get("study") is not None:
        name = f"{origin['study']}-trial-{origin['trial']}"
        name += "".join(f"+{k}={v}" for k, v in origin.get("set", {}).items())
    else:
        stem = Path(config_path).stem if config_path else cfg.backbone.replace(":", ".")
        name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(cfg.out_dir) / "members" / name


def _macro_f1(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    return macro_f1(confusion(labels, logits.argmax(1), num_classes))


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
    has_test = (data.root / "test.csv").is_file()
    test_ids, test_paths = test_images(data.root) if has_test else ([], [])
    paths = data.abs_paths()
    name = out.name

    tags = {"rockopt.member": str(out.resolve()), "rockopt.tta": tta, **run_tags(data, folds, -1)}
    tags.pop("rockopt.fold")
    tags.update({f"rockopt.{k}": str(v) for k, v in origin.items() if v is not None})
    with Run(cfg.experiment, f"cv-{name}", tags=tags) as parent:
        parent.log_params({k: v for k, v in cfg.flat().items() if k != "fold"} | {"tta": tta})
        for k in range(folds.k):
            fold_dir = out / f"fold-{k}"
            if (fold_dir / "done.json").is_file():
                done = json.loads((fold_dir / "done.json").read_text())
                if done.get("tta") != tta:
                    raise ConfigError(f"{out}: its finished folds used --tta {done.get('tta')}; resume with the same, or use another --out")
                log(f"fold {k}: already done, kept")
                continue
            # a fold a crash cut short goes on from its last epoch, in its own MLflow run
            state = load_state(fold_dir / LAST) if (fold_dir / LAST).is_file() else None
            if state is not None:
                log(f"fold {k}: continuing at epoch {state['epoch'] + 1}/{cfg.epochs}")
            fold_run = Run.reopen(state["meta"]["mlflow_run_id"]) if state else Run(
                cfg.experiment, f"{name}-f{k}", tags=run_tags(data, folds, k), parent_run_id=parent.id
            )  # fmt: skip
            with fold_run as run:
                def epoch_line(res, k=k) -> None:
                    log(f"fold {k} epoch {res.epoch}/{cfg.epochs}  train_loss {res.train_loss:.4f}  val_f1 {res.val_f1:.4f}  {res.seconds:.1f} s")

                result = train_in_run(run, cfg, data, folds, k, fold_dir, on_epoch=epoch_line, progress=progress, resume=state)
                _, val = folds.split(k)
                # the best epoch's checkpoint, with the member's TTA, on the fold's validation and the test images
                val_logits, val_ok = predict_logits(result.checkpoint, [paths[i] for i in val], tta, data_root=data.root)
                np.savez(fold_dir / "oof.npz", index=val, logits=val_logits, ok=val_ok)
                if has_test:
                    test_logits, _ = predict_logits(result.checkpoint, test_paths, tta, data_root=data.root)
                    np.savez(fold_dir / "test.npz", logits=test_logits)
                f1 = _macro_f1(val_logits, data.labels[val], len(data.classes))
                run.log_metrics({"oof_fold_f1": f1}, step=k)
            (fold_dir / "done.json").write_text(json.dumps({"fold": k, "val_f1": f1, "tta": tta, "mlflow_run_id": run.id}))
            log(f"fold {k}: val macro-F1 {f1:.4f} (TTA {tta})")
        meta = assemble_member(out, data, folds, tta, test_ids, origin, parent.id)
        parent.log_metrics({"oof_f1": meta["oof_f1"], **{f"fold_{i}_f1": f for i, f in enumerate(meta["fold_f1"])}}, step=0)
        parent.log_artifacts([out / "member.json", out / "config.yaml", out / "oof.npz"] + ([out / "test.npz"] if has_test else []), "member")
    return out


def assemble_member(out: Path, data: TrainSet, folds: Folds, tta: str, test_ids: list[str], origin: dict, run_id: str) -> dict:
    """Join the folds' OOF rows in folds-file order and average the folds' test logits."""
    n, c = len(data), len(data.classes)
    oof = np.zeros((n, c), dtype=np.float32)
    unreadable = 0
    fold_f1 = []
    test = None
    for k in range(folds.k):
        part = np.load(out / f"fold-{k}" / "oof.npz")
        oof[part["index"]] = part["logits"]
        unreadable += int((~part["ok"]).sum())
        fold_f1.append(json.loads((out / f"fold-{k}" / "done.json").read_text())["val_f1"])
        if test_ids:
            t = np.load(out / f"fold-{k}" / "test.npz")["logits"]
            test = t if test is None else test + t
    np.savez_compressed(out / "oof.npz", ids=np.asarray(data.paths), labels=data.labels, fold=folds.fold, logits=oof)
    if test_ids:
        np.savez_compressed(out / "test.npz", ids=np.asarray(test_ids), logits=(test / folds.k).astype(np.float32))
    meta = {
        "name": out.name,
        "classes": list(data.classes),
        "folds_fingerprint": folds.fingerprint,
        "data_fingerprint": data.fingerprint,
        "folds_file": str(folds.path.resolve()),
        "data": str(data.root.resolve()),
        "tta": tta,
        "fold_f1": fold_f1,
        "oof_f1": _macro_f1(oof, data.labels, c),
        "unreadable_rows": unreadable,
        "mlflow_run_id": run_id,
        **origin,
    }
    (out / "member.json").write_text(json.dumps(meta, indent=2))
    return meta
