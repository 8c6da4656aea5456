"""Does the search earn its keep? The default recipe against the `cpu` study's best, on the same folds.

    python benchmarks/search_value.py [--study cpu] [--data DIR] [--work DIR] [--top 3]

Arms, each with `rockopt` commands as a user runs them (the work directory keeps every output;
running the script again reuses what is finished):
  baseline   `cv` of the default recipe: the study's fixed settings, every searched setting at
             its default (the study's trial 0 with `baseline_first`);
  recipe     `cv` of a plain, well-known recipe: the baseline with label smoothing 0.1;
  search     `search` with the study, `best --export` of the top K, `cv` of each;
  blend      `blend --method auto` of those members (mean, greedy, weights; cross-validated).

Prints one table (OOF macro-F1, epochs trained, wall time per arm) and, for each member
against the baseline, the paired difference per fold and a bootstrap over images (the same
resampled rows for both), so a gain can be told from noise. Writes search_value.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from _common import machine, work_dir

HERE = Path(__file__).resolve().parent


def rockopt(work: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "rockopt", *map(str, args)], cwd=work, check=True, stdout=subprocess.DEVNULL)


def study_variant(src: Path, out: Path, data: Path | None, n_trials: int | None) -> dict:
    """The study file with absolute paths (it is run from the work directory)."""
    spec = yaml.safe_load(src.read_text())
    if data is not None:
        spec["data"]["path"] = str(data.resolve())
    elif spec["data"].get("path"):
        spec["data"]["path"] = str((src.parent / spec["data"]["path"]).resolve())
    if spec.get("fixed", {}).get("pretrained_file"):
        spec["fixed"]["pretrained_file"] = str((src.parent / spec["fixed"]["pretrained_file"]).resolve())
    if n_trials:
        spec["budget"]["n_trials"] = n_trials
    out.write_text(yaml.safe_dump(spec, sort_keys=False))
    return spec


def member(work: Path, name: str, config: Path, seconds: dict) -> dict:
    """`cv` of CONFIG into members/NAME (kept when done); its member.json."""
    out = work / "members" / name
    if not (out / "member.json").is_file():
        t0 = time.perf_counter()
        rockopt(work, "cv", "--config", config, "--out", out, "-q")
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
    meta = json.loads((out / "member.json").read_text())
    meta["epochs"] = yaml.safe_load((out / "config.yaml").read_text())["epochs"] * len(meta["fold_f1"])  # cv trains every epoch
    return meta


def paired(a: dict, b: dict, work: Path, reps: int = 2000, seed: int = 0) -> dict:
    """Member B against member A: per-fold differences, and a bootstrap over images of the OOF macro-F1 difference."""
    from rockopt.ensemble.score import MacroF1

    oa, ob = np.load(work / "members" / a["name"] / "oof.npz"), np.load(work / "members" / b["name"] / "oof.npz")
    assert (oa["ids"] == ob["ids"]).all()
    y, c = oa["labels"], len(a["classes"])
    pa, pb = oa["logits"].argmax(1), ob["logits"].argmax(1)
    per_fold = [fb - fa for fa, fb in zip(a["fold_f1"], b["fold_f1"])]
    rng = np.random.default_rng(seed)
    diffs = np.empty(reps)
    for r in range(reps):
        i = rng.integers(0, len(y), len(y))
        score = MacroF1(y[i], c)
        diffs[r] = score.from_pred(pb[i]) - score.from_pred(pa[i])
    return {
        "oof_diff": b["oof_f1"] - a["oof_f1"],
        "per_fold": per_fold,
        "per_fold_mean": float(np.mean(per_fold)),
        "per_fold_sd": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else 0.0,
        "bootstrap_ci95": [float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))],
        "p_not_better": float((diffs <= 0).mean()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--study", default="cpu", help="a study name or file")
    ap.add_argument("--data", type=Path, default=None, help="data set (default: the study file's)")
    ap.add_argument("--n-trials", type=int, default=None, help="default: the study file's budget")
    ap.add_argument("--top", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("runs/bench-search-value"))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra fixed settings (e.g. image_size=32 for a smoke run)")
    a = ap.parse_args()
    work = work_dir(a.work)
    from rockopt.search.study_file import find_study_file

    source = find_study_file(a.study).resolve()
    spec = study_variant(source, work / "study.yaml", a.data, a.n_trials)
    for item in a.sets:
        k, _, v = item.partition("=")
        spec["fixed"][k] = yaml.safe_load(v)
    if not spec.get("baseline_first"):
        raise SystemExit(f"{source}: the study needs baseline_first: true (its trial 0 is the baseline)")
    (work / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    name = source.stem
    seconds: dict[str, float] = {}
    print(machine(), flush=True)

    import optuna

    storage = f"sqlite:///{work / 'studies' / (name + '.db')}"
    (work / "studies").mkdir(exist_ok=True)
    n_trials = spec["budget"]["n_trials"]
    try:
        done = len([t for t in optuna.load_study(study_name=name, storage=storage).trials if t.state.is_finished()])
    except KeyError:
        done = 0
    if done < n_trials:
        t0 = time.perf_counter()
        rockopt(work, "search", "--study", work / "study.yaml", "--study-name", name, "--storage", storage, "--n-trials", n_trials - done, "-q")
        seconds["search"] = time.perf_counter() - t0
    study = optuna.load_study(study_name=name, storage=storage)
    search_epochs = sum(len(t.intermediate_values) for t in study.trials)
    baseline_trial = next(t for t in study.trials if t.user_attrs.get("rockopt.baseline"))

    # the baseline and the plain recipe: the baseline trial's settings, on every fold
    configs = work / "configs"
    configs.mkdir(exist_ok=True)
    base_cfg = {k: v for k, v in baseline_trial.user_attrs["config"].items() if k not in ("fold", "out_dir")}
    base_cfg["folds_file"] = str((work / "studies" / f"{name}.folds.csv").resolve())
    (configs / "baseline.yaml").write_text(yaml.safe_dump(base_cfg, sort_keys=False))
    (configs / "recipe.yaml").write_text(yaml.safe_dump({**base_cfg, "label_smoothing": 0.1}, sort_keys=False))
    baseline = member(work, "baseline", configs / "baseline.yaml", seconds)
    recipe = member(work, "recipe", configs / "recipe.yaml", seconds)

    export = work / "export"
    if not export.is_dir():
        rockopt(work, "best", "--study", work / "study.yaml", "--study-name", name, "--storage", storage, "--top", a.top, "--export", export)
    members = []
    for d in sorted(export.iterdir()):
        if (d / "config.yaml").is_file():
            members.append(member(work, f"{name}-{d.name}", d / "config.yaml", seconds))

    blend_dir = work / "blend"
    if not (blend_dir / "weights.json").is_file():
        rockopt(work, "blend", "--members", *[work / "members" / m["name"] for m in members], "--method", "auto", "--out", blend_dir)
    blend = json.loads((blend_dir / "weights.json").read_text())

    rows = [("baseline: default recipe", baseline), ("plain recipe: label smoothing 0.1", recipe)]
    rows += [(f"search member {m['name']} (trial {m.get('trial')})", m) for m in members]
    size = spec["fixed"].get("image_size", spec["data"]["image_size"])
    print(f"\n{spec['data']['path']}: {spec['data']['folds']} folds, image_size {size}, study {name} ({len(study.trials)} trials)")
    print("| arm | OOF macro-F1 | per fold | epochs | wall time |")
    print("| --- | --- | --- | --- | --- |")
    for label, m in rows:
        folds = " ".join(f"{f:.3f}" for f in m["fold_f1"])
        print(f"| {label} | {m['oof_f1']:.4f} | {folds} | {m['epochs']} | {seconds.get(m['name'], float('nan')) / 60:.1f} min |")
    print(f"| search itself | best trial {study.best_value:.4f} (fold 0) | | {search_epochs} | {seconds.get('search', float('nan')) / 60:.1f} min |")
    for s in blend["scores"][len(members):]:
        used = " (used)" if s["name"] == blend["method"] else ""
        print(f"| blend {s['name']}{used} | in-sample {s['oof_macro_f1']:.4f}, cross-validated {s['cross_validated_macro_f1']:.4f} | | | |")
    print(f"blend --method auto used: {blend['method']}")

    print("\npaired against the baseline (the same images and folds):")
    comparisons = {}
    for label, m in rows[1:]:
        p = paired(baseline, m, work)
        comparisons[m["name"]] = p
        ci = p["bootstrap_ci95"]
        print(
            f"- {label}: OOF {p['oof_diff']:+.4f}; per fold {' '.join(f'{d:+.3f}' for d in p['per_fold'])} "
            f"(mean {p['per_fold_mean']:+.4f}, sd {p['per_fold_sd']:.4f}); bootstrap 95% [{ci[0]:+.4f}, {ci[1]:+.4f}], "
            f"P(no gain) {p['p_not_better']:.3f}"
        )
    result = {
        "machine": machine(),
        "study": spec,
        "members": {label: {k: m[k] for k in ("name", "oof_f1", "fold_f1", "epochs")} for label, m in rows},
        "search": {"trials": len(study.trials), "epochs": search_epochs, "best_value": study.best_value},
        "blend": blend["scores"],
        "blend_used": blend["method"],
        "paired": comparisons,
        "seconds": seconds,
    }
    (work / "search_value.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
