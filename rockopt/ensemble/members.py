"""A blend member's directory, the one place its files are named, written and read: `rockopt cv`
writes it, `blend` reads it (`predict` takes its fold-*/best.pt).

  member.json   classes, folds fingerprint, per-fold and OOF macro-F1, TTA, provenance (study, trial)
  config.yaml   the configuration
  oof.npz       ids (relative paths, folds-file order), labels, fold, logits (float32, one row per image)
  test.npz      ids (test.csv order), logits: mean over the fold models
  fold-K/       best.pt, last.pt (the state after the latest epoch: an unfinished fold goes on
                from it), the fold's MLflow files, oof.npz (index, logits, ok) and test.npz (logits)
                of its best checkpoint, and done.json once the fold is finished

Also here: checking that members can be blended, and finding a study's members.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rockopt.config import TrainConfig
from rockopt.errors import RockoptError
from rockopt.metrics import confusion, macro_f1

if TYPE_CHECKING:
    from rockopt.data.folds import Folds
    from rockopt.data.layout import TrainSet

META, OOF, TEST, DONE = "member.json", "oof.npz", "test.npz", "done.json"


def members_root(out_dir: str | Path) -> Path:
    """Where `cv` writes its members under an out_dir."""
    return Path(out_dir) / "members"


MEMBERS_ROOT = members_root(TrainConfig.model_fields["out_dir"].default)  # runs/members


def default_member_dir(cfg: TrainConfig, config_path: str | Path | None, origin: dict) -> Path:
    """`<study>-trial-<n>[+key=value...]` for an exported trial (ORIGIN), else the config's name and the time."""
    if origin.get("study") is not None:
        name = f"{origin['study']}-trial-{origin['trial']}"
        name += "".join(f"+{k}={v}" for k, v in origin.get("set", {}).items())
    else:
        stem = Path(config_path).stem if config_path else cfg.backbone.replace(":", ".")
        name = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    return members_root(cfg.out_dir) / name


def fold_dir(member: Path, k: int) -> Path:
    return member / f"fold-{k}"


def fold_done(member: Path, k: int) -> dict | None:
    """What a finished fold recorded (fold, val_f1, tta, mlflow_run_id); None while it is not finished."""
    done = fold_dir(member, k) / DONE
    return json.loads(done.read_text()) if done.is_file() else None


def write_fold_logits(member: Path, k: int, index: np.ndarray, logits: np.ndarray, ok: np.ndarray, test_logits: np.ndarray | None) -> None:
    """Fold K's best checkpoint's logits: its validation rows (INDEX: rows of the folds file; OK: readable) and the test images."""
    np.savez(fold_dir(member, k) / OOF, index=index, logits=logits, ok=ok)
    if test_logits is not None:
        np.savez(fold_dir(member, k) / TEST, logits=test_logits)


def mark_fold_done(member: Path, k: int, val_f1: float, tta: str, run_id: str) -> None:
    """Fold K is finished: a rerun keeps it."""
    (fold_dir(member, k) / DONE).write_text(json.dumps({"fold": k, "val_f1": val_f1, "tta": tta, "mlflow_run_id": run_id}))


def oof_macro_f1(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    return macro_f1(confusion(labels, logits.argmax(1), num_classes))


def assemble_member(out: Path, data: TrainSet, folds: Folds, tta: str, test_ids: list[str], origin: dict, run_id: str) -> dict:
    """Join the folds' OOF rows in folds-file order and average the folds' test logits; writes and returns member.json's record."""
    n, c = len(data), len(data.classes)
    oof = np.zeros((n, c), dtype=np.float32)
    unreadable = 0
    fold_f1 = []
    test = None
    for k in range(folds.k):
        part = np.load(fold_dir(out, k) / OOF)
        oof[part["index"]] = part["logits"]
        unreadable += int((~part["ok"]).sum())
        fold_f1.append(fold_done(out, k)["val_f1"])
        if test_ids:
            t = np.load(fold_dir(out, k) / TEST)["logits"]
            test = t if test is None else test + t
    np.savez_compressed(out / OOF, ids=np.asarray(data.paths), labels=data.labels, fold=folds.fold, logits=oof)
    if test_ids:
        np.savez_compressed(out / TEST, ids=np.asarray(test_ids), logits=(test / folds.k).astype(np.float32))
    meta = {
        "name": out.name,
        "classes": list(data.classes),
        "folds_fingerprint": folds.fingerprint,
        "data_fingerprint": data.fingerprint,
        "folds_file": str(folds.path.resolve()),
        "data": str(data.root.resolve()),
        "tta": tta,
        "fold_f1": fold_f1,
        "oof_f1": oof_macro_f1(oof, data.labels, c),
        "unreadable_rows": unreadable,
        "mlflow_run_id": run_id,
        **origin,
    }
    (out / META).write_text(json.dumps(meta, indent=2))
    return meta


def member_files(member: Path) -> list[Path]:
    """The files that make the member (what its MLflow run keeps a copy of)."""
    return [member / name for name in (META, "config.yaml", OOF, TEST) if (member / name).is_file()]


def member_meta(d: str | Path) -> dict:
    """member.json of member directory D."""
    return json.loads((Path(d) / META).read_text())


@dataclass
class Member:
    name: str
    dir: Path
    classes: list[str]
    folds_fingerprint: str
    ids: np.ndarray  # OOF row identities: relative paths
    labels: np.ndarray
    fold: np.ndarray
    oof_logits: np.ndarray  # float32 [N, C]
    test_ids: np.ndarray | None
    test_logits: np.ndarray | None
    meta: dict


def load_member(d: str | Path) -> Member:
    d = Path(d)
    if not (d / META).is_file() or not (d / OOF).is_file():
        raise RockoptError(f"{d}: not a blend member (no {META} / {OOF}); make one with: rockopt cv --config CONFIG.yaml --out {d}")
    meta = member_meta(d)
    oof = np.load(d / OOF)
    test = np.load(d / TEST) if (d / TEST).is_file() else None
    return Member(
        name=meta.get("name", d.name),
        dir=d,
        classes=meta["classes"],
        folds_fingerprint=meta["folds_fingerprint"],
        ids=oof["ids"],
        labels=oof["labels"],
        fold=oof["fold"],
        oof_logits=oof["logits"].astype(np.float32, copy=False),
        test_ids=test["ids"] if test is not None else None,
        test_logits=test["logits"].astype(np.float32, copy=False) if test is not None else None,
        meta=meta,
    )


def check_compatible(members: list[Member]) -> None:
    """Same folds, same OOF sample order, same classes, same test rows; names the member that differs."""
    if len(members) < 2:
        raise RockoptError("a blend needs at least two members")
    ref = members[0]
    for m in members[1:]:
        if m.folds_fingerprint != ref.folds_fingerprint:
            raise RockoptError(
                f"member {m.dir} used other folds ({m.folds_fingerprint}) than {ref.dir} ({ref.folds_fingerprint}); "
                "run cv for every member with the same --folds-file"
            )
        if m.classes != ref.classes:
            raise RockoptError(f"member {m.dir} has other classes than {ref.dir}")
        if len(m.ids) != len(ref.ids) or not np.array_equal(m.ids, ref.ids):
            raise RockoptError(f"member {m.dir} has its OOF rows in another sample order (or other samples) than {ref.dir}")
        if (m.test_ids is None) != (ref.test_ids is None) or (
            m.test_ids is not None and not np.array_equal(m.test_ids, ref.test_ids)
        ):
            raise RockoptError(f"member {m.dir} has other test rows than {ref.dir}")


def study_members(study: str, trials: list[int], root: str | Path = MEMBERS_ROOT) -> list[Path]:
    """The member directories `cv` made for these trials of STUDY; names any missing one and how to make it."""
    found: dict[int, Path] = {}
    # a member of the trial's own recipe before one that cv trained with --set changes
    metas = [(meta_file, json.loads(meta_file.read_text())) for meta_file in sorted(Path(root).glob(f"*/{META}"))]
    for meta_file, meta in sorted(metas, key=lambda m: bool(m[1].get("set"))):
        if meta.get("study") == study and meta.get("trial") in trials:
            found.setdefault(meta["trial"], meta_file.parent)
    missing = [t for t in trials if t not in found]
    if missing:
        t = missing[0]
        raise RockoptError(
            f"no cv member for trial {t} of study '{study}' under {root} ({len(missing)} missing); make it with: "
            f"rockopt best --study {study} --top {len(trials)} --export best && rockopt cv --config best/trial-{t:04d}/config.yaml"
        )
    return [found[t] for t in trials]
