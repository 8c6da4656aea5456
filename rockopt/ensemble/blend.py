"""`rockopt blend`: fit blend weights on OOF probabilities, estimate honestly, write the results.

The honest estimate: for every fold f, the blend is fitted on the OOF rows of the other
folds and scored on fold f's rows; the held-out predictions of all folds together give the
cross-validated macro-F1. The in-sample figure (fitted and scored on all OOF rows) is
optimistic by construction; the gap between the two shows how much the fit overfits.

`auto` (the default) uses whichever does best out of sample: a blend method, or, when no
blend beats the best member's OOF macro-F1, that member alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rockopt.data.layout import write_submission
from rockopt.ensemble.members import Member, check_compatible, fold_dir, load_member
from rockopt.ensemble.methods import METHODS, Blend, fit
from rockopt.ensemble.score import MacroF1
from rockopt.errors import RockoptError
from rockopt.metrics import softmax
from rockopt.model_registry import DEFAULT_ALIAS, LoggedModel, MemberSpec, check_registration, log_and_register
from rockopt.outputs import ensure_dir
from rockopt.registry import lookup
from rockopt.tracking import Run


@dataclass
class Row:
    name: str
    in_sample: float
    cross_validated: float


AUTO = "auto"


@dataclass
class BlendResult:
    method: str  # the method used, or "member:<name>" when auto found no blend better than a member
    blend: Blend  # fitted on all OOF rows
    rows: list[Row]  # members, then every method
    members: list[Member]
    oof_probs: np.ndarray
    test_probs: np.ndarray | None
    weights_by_method: dict[str, Blend] = field(default_factory=dict)


def _cross_validated(method: str, probs: np.ndarray, labels: np.ndarray, fold: np.ndarray, score: MacroF1, **kw) -> float:
    pred = np.empty(len(labels), dtype=np.int64)
    for f in np.unique(fold):
        train, held = fold != f, fold == f
        b = fit(method, probs[:, train], labels[train], **kw)
        pred[held] = b.predict(probs[:, held])
    return score.from_pred(pred)


def blend_members(members: list[Member], method: str = "weights", offsets: bool = False, log=lambda s: None) -> BlendResult:
    check_compatible(members)
    lookup({AUTO: None, **METHODS}, method, "method")
    ref = members[0]
    labels, fold, c = ref.labels, ref.fold, len(ref.classes)
    probs = np.stack([softmax(m.oof_logits.copy()) for m in members])
    score = MacroF1(labels, c)
    rows = [Row(m.name, score(p), score(p)) for m, p in zip(members, probs)]  # OOF rows are held out already
    fitted: dict[str, Blend] = {}
    for name in METHODS:
        kw = {"offsets": offsets} if name == "weights" else {}
        log(f"fitting {name} ...")
        fitted[name] = fit(name, probs, labels, **kw)
        in_sample = score(fitted[name].scores(probs))
        cv = in_sample if name == "mean" else _cross_validated(name, probs, labels, fold, score, **kw)
        rows.append(Row(name, in_sample, cv))
    if method == AUTO:
        method, chosen = _best_out_of_sample(rows, fitted, len(members), c)
        log(f"auto: {method}, the best cross-validated macro-F1")
    else:
        chosen = fitted[method]
    test_probs = None
    if ref.test_logits is not None:
        test_probs = chosen.probs(np.stack([softmax(m.test_logits.copy()) for m in members]))
    return BlendResult(method, chosen, rows, members, chosen.probs(probs), test_probs, fitted)


def _best_out_of_sample(rows: list[Row], fitted: dict[str, Blend], m: int, c: int) -> tuple[str, Blend]:
    """The method with the best cross-validated figure; the best member alone unless a blend beats it
    (ties go to the member, then to the simpler method: nothing is gained by the extra fit)."""
    members, methods = rows[:m], rows[m:]
    best_member = max(range(m), key=lambda i: members[i].cross_validated)
    best = max(methods, key=lambda r: r.cross_validated)  # first of equals: mean, greedy, weights
    if best.cross_validated > members[best_member].cross_validated:
        return best.name, fitted[best.name]
    return f"member:{members[best_member].name}", Blend(np.eye(m)[best_member], np.zeros(c))


def write_blend(result: BlendResult, out: str | Path) -> list[Path]:
    """weights.json and blend.npz (blended OOF and test probabilities) in OUT."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ref = result.members[0]
    doc = {
        "method": result.method,
        "classes": ref.classes,
        "folds_fingerprint": ref.folds_fingerprint,
        "members": [
            {"name": m.name, "dir": str(m.dir.resolve()), "weight": float(w)} for m, w in zip(result.members, result.blend.weights)
        ],
        "offsets": {c: float(b) for c, b in zip(ref.classes, result.blend.offsets)},
        "weights_by_method": {k: [float(x) for x in b.weights] for k, b in result.weights_by_method.items()},
        "scores": [{"name": r.name, "oof_macro_f1": r.in_sample, "cross_validated_macro_f1": r.cross_validated} for r in result.rows],
    }
    weights = out / "weights.json"
    weights.write_text(json.dumps(doc, indent=2))
    arrays = {"oof_ids": ref.ids, "oof_labels": ref.labels, "oof_probs": result.oof_probs, "classes": np.asarray(ref.classes)}
    if result.test_probs is not None:
        arrays |= {"test_ids": ref.test_ids, "test_probs": result.test_probs}
    npz = out / "blend.npz"
    np.savez_compressed(npz, **arrays)
    return [weights, npz]


def test_labels(result: BlendResult) -> list[str]:
    """Predicted class names of the test rows (offsets applied)."""
    return blend_labels(result.test_probs, result.blend.offsets, result.members[0].classes)


def blend_labels(probs: np.ndarray, offsets: np.ndarray, classes: list[str]) -> list[str]:
    """Class names of blended PROBS, with the blend's per-class OFFSETS added to their log (when fitted).
    The submission's labels and the registered model's both come from here."""
    scores = np.log(probs + 1e-12) + offsets if offsets.any() else probs
    return [classes[i] for i in scores.argmax(1)]


@dataclass
class BlendRun:
    result: BlendResult
    files: list[Path]  # what OUT got: weights.json, blend.npz, and submission.csv where the members have test rows
    run_id: str
    model: LoggedModel | None = None  # with `register`: the ensemble as a registered MLflow model


def run_blend(
    dirs: list[str | Path], method: str = AUTO, offsets: bool = False, out: str | Path = "runs/blend",
    data: str | Path | None = None, log: Callable[[str], None] = lambda s: None,
    register: str | None = None, alias: str = DEFAULT_ALIAS,
) -> BlendRun:  # fmt: skip
    """`rockopt blend`: blend the members in DIRS, write the results to OUT, and record them in an
    MLflow run (`blend-METHOD`, in the members' study's experiment). The submission takes its
    rows from DATA, by default the data set the first member was trained on. REGISTER: also
    log the ensemble behind the submission as a model of that run, a new version of that name."""
    check_registration(register, alias)
    out = ensure_dir(out, "--out")  # before the fitting, which takes a while
    members = [load_member(d) for d in dirs]
    if register:
        for m in members:
            fold_checkpoints(m)  # a member without its fold models is refused before the fitting
    result = blend_members(members, method, offsets, log=log)
    files = write_blend(result, out)
    ref = members[0]
    with Run(ref.meta.get("study") or "rockopt-blend", f"blend-{method}", tags={"rockopt.folds_fingerprint": ref.folds_fingerprint}) as run:
        run.log_params({"method": method, "used": result.method, "offsets": offsets, "members": ",".join(m.name for m in members)})
        run.log_metrics(score_metrics(result.rows), step=0)
        if result.test_probs is not None:
            files.append(write_submission(_data_root(data, ref), list(ref.test_ids), test_labels(result), out / "submission.csv"))
        run.log_artifacts(files)
    model = None
    if register:
        log(f"logging and registering the ensemble as {register} ...")
        model = log_and_register(run.id, ref.classes, ensemble_spec(result), offsets=result.blend.offsets, name=register, alias=alias)
    return BlendRun(result, files, run.id, model)


def fold_checkpoints(member: Member) -> list[Path]:
    """The member's fold models (fold-K/best.pt), in fold order: the order `cv` sums their test logits in."""
    paths = [fold_dir(member.dir, k) / "best.pt" for k in range(len(member.meta.get("fold_f1", [])))]
    missing = [p for p in paths if not p.is_file()]
    if not paths or missing:
        raise RockoptError(f"member {member.dir}: no fold model {missing[0] if missing else 'fold-*/best.pt'}: cannot make a model of it")
    return paths


def ensemble_spec(result: BlendResult) -> list[MemberSpec]:
    """The members that carry weight in the blend, with their fold models, TTA and weight."""
    return [
        MemberSpec(m.name, m.meta.get("tta", "none"), float(w), fold_checkpoints(m))
        for m, w in zip(result.members, result.blend.weights)
        if w > 0  # a member left out adds nothing: 0 x its probabilities
    ]


def score_metrics(rows: list[Row]) -> dict[str, float]:
    """Every row's OOF and cross-validated macro-F1 as MLflow metrics, named after the row."""
    metrics = {}
    for r in rows:
        key = re.sub(r"[^\w\-. :]", "_", r.name)  # what MLflow allows in a metric name
        metrics[f"oof_f1.{key}"] = r.in_sample
        metrics[f"cv_f1.{key}"] = r.cross_validated
    return metrics


def _data_root(data: str | Path | None, member: Member) -> Path:
    if data is None and not member.meta.get("data"):
        raise RockoptError(f"member {member.dir} names no data set: give --data DIR for the submission's test rows")
    return Path(data if data is not None else member.meta["data"])
