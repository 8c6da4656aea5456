"""Loading blend members (what `rockopt cv` wrote) and checking that they can be blended."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rockopt.errors import RockoptError

MEMBERS_ROOT = Path("runs/members")  # where `cv` writes members by default (out_dir runs)


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
    if not (d / "member.json").is_file() or not (d / "oof.npz").is_file():
        raise RockoptError(f"{d}: not a blend member (no member.json / oof.npz); make one with: rockopt cv --config CONFIG.yaml --out {d}")
    meta = json.loads((d / "member.json").read_text())
    oof = np.load(d / "oof.npz")
    test = np.load(d / "test.npz") if (d / "test.npz").is_file() else None
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
    metas = [(meta_file, json.loads(meta_file.read_text())) for meta_file in sorted(Path(root).glob("*/member.json"))]
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
