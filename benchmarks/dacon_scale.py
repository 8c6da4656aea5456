"""Does rockopt's host-side work scale to the Dacon data set? Each stage timed at several sizes N.

Data: N training images with Dacon's class shares and N/4 test images (380,020 + 95,006 at
full size) in the Dacon layout (train/<Class>/TRAIN_xxxxxx.jpg, test/TEST_xxxxx.jpg, test.csv,
sample_submission.csv), made once per N under --work and reused. The images are SMALL
JPEGs (64x48, q90, about 2 KB): 256 pixel variants per class, encoded once, and every
file is made byte-distinct by a JPEG comment segment naming it (so `data check` finds no
duplicates, and decodes every file as it would a real one; the pixels repeat). They measure
the per-file costs (listing, stat, hashing, decoding a small image, per-row bookkeeping),
not the decoding of 1440x1080 photos: on Dacon's real photos the decoding stages (`data
check`, the cache build) cost far more per image, the other stages the same.

Stages (each cell: wall seconds, measured once, in this order; `--repeat R` keeps the fastest of R):

  layout scan           rockopt.data.layout.scan_train (every run does it first)
  data check            rockopt.data.check.check_dataset, the function `rockopt data check`
                        calls, with its default workers (one per core): every file read,
                        hashed and decoded
  folds: create         load_or_create_folds with no file: StratifiedKFold (5) + the CSV
  folds: reuse          load_or_create_folds on that file: read it, check the data fingerprint
  cache build           rockopt.data.cache.build_cache at --cache-size px, from nothing
  cache: open           open_reader(cache="auto") as every run does: the cache row of every
                        training path, and a stat of each file (is the cache stale?)
  cv: OOF assembly      rockopt.cv.assemble_member on synthetic per-fold files (5 folds:
                        oof.npz index/logits/ok, test.npz logits, done.json): oof.npz, test.npz, member.json
  blend: load members   rockopt.ensemble.members.load_member x --members, then check_compatible

A second table gives the same runs' CPU seconds (this process and its decoding workers): on
a shared machine, wall time also counts what others run. Another prints the per-image
decoding cost on --photos generated 1440x1080 photos (one process), which scales the decoding
stages to real photos: seconds ~ images x ms / 1000 / cores.

    python benchmarks/dacon_scale.py                                 # N = 380,020 (Dacon): long on 2 cores
    python benchmarks/dacon_scale.py --n 10000 100000 380020         # how each cost grows with N
    python benchmarks/dacon_scale.py --data /data/dacon              # a real data set: one column, its own N
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _common import CLASSES, machine

# Dacon's training class shares (380,020 images), normalised before use
DACON_SHARES = {
    "Andesite": 0.114, "Basalt": 0.066, "Etc": 0.041, "Gneiss": 0.219,
    "Granite": 0.241, "Mud_Sandstone": 0.163, "Weathered_Rock": 0.156,
}
assert tuple(DACON_SHARES) == CLASSES
VARIANTS = 256  # pixel variants per class
IMAGE_WH = (64, 48)
K = 5  # folds, as rockopt's default


# -- the data set ---------------------------------------------------------------------------


def class_counts(n: int) -> np.ndarray:
    """Images per class for N training images: Dacon's shares, normalised, largest remainder rounding."""
    shares = np.array(list(DACON_SHARES.values()))
    exact = n * shares / shares.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(exact - counts)[::-1][: n - counts.sum()]] += 1
    return counts


def _variants(seed: int = 0) -> list[list[bytes]]:
    """VARIANTS small JPEGs per class (blotches, a class tint, noise), encoded once."""
    import cv2

    rng = np.random.default_rng(seed)
    w, h = IMAGE_WH
    out = []
    for c in range(len(CLASSES)):
        row = []
        for _ in range(VARIANTS):
            grid = rng.standard_normal((4, 5, 3)).astype(np.float32)
            img = 50 * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
            img += 100 + 15 * c + rng.normal(0, 10, (h, w, 3)).astype(np.float32)
            ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            row.append(buf.tobytes())
        out.append(row)
    return out


def _tagged(jpeg: bytes, tag: str) -> bytes:
    """JPEG bytes with a comment segment (COM, 0xFFFE) right after SOI: same pixels, distinct bytes."""
    body = tag.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + jpeg[2:]


def make_dacon_data(root: Path, n: int) -> tuple[Path, float]:
    """N training + N/4 test images in the Dacon layout under ROOT, written once. (root, seconds; 0 = reused)."""
    n_test = n // 4
    stamp = f"dacon-scale v1 n={n} test={n_test} variants={VARIANTS} size={IMAGE_WH}"
    done = root / ".complete"
    if done.is_file() and done.read_text() == stamp:
        return root, 0.0
    t0 = time.perf_counter()
    if root.exists():
        shutil.rmtree(root)
    jpegs = _variants()
    rng = np.random.default_rng(1)
    i = 0
    for c, (name, count) in enumerate(zip(CLASSES, class_counts(n))):
        d = root / "train" / name
        d.mkdir(parents=True)
        for v in rng.integers(0, VARIANTS, count):
            rel = f"train/{name}/TRAIN_{i:06d}.jpg"
            with open(root / rel, "wb") as f:
                f.write(_tagged(jpegs[c][v], rel))
            i += 1
    (root / "test").mkdir()
    ids = [f"TEST_{j:05d}" for j in range(n_test)]
    for j, (c, v) in enumerate(zip(rng.integers(0, len(CLASSES), n_test), rng.integers(0, VARIANTS, n_test))):
        with open(root / "test" / f"{ids[j]}.jpg", "wb") as f:
            f.write(_tagged(jpegs[c][v], ids[j]))
    with open(root / "test.csv", "w") as f:
        f.write("ID,img_path\n" + "".join(f"{t},./test/{t}.jpg\n" for t in ids))
    with open(root / "sample_submission.csv", "w") as f:
        f.write("ID,rock_type\n" + "".join(f"{t},{CLASSES[0]}\n" for t in ids))
    done.write_text(stamp)
    return root, time.perf_counter() - t0


# -- the stages -----------------------------------------------------------------------------


@dataclass
class Scale:
    """One data set and the scratch space its stages share; stages fill `state` for later ones."""

    data: Path
    work: Path  # scratch for this N: folds, cache, members
    cache_size: int
    members: int
    generated: bool  # a set this script made: known to be clean
    state: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.state["trainset"])


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Scale], None]  # the timed work
    prepare: Callable[[Scale], None] | None = None  # untimed set-up before each timed run
    # run untimed when the stage is left out (--only) and later stages need what it leaves
    ensure: Callable[[Scale], None] | None = None


def _scan(s: Scale) -> None:
    from rockopt.data.layout import scan_train

    s.state["trainset"] = scan_train(s.data)


def _check(s: Scale) -> None:
    from rockopt.data.check import check_dataset

    # the CLI's call (rockopt/cli/data.py): workers = one per core, no progress bar here
    report = check_dataset(s.data, workers=os.cpu_count() or 1, progress=False)
    assert not s.generated or (report.ok and not report.conflicts and not report.unreadable), (report.fatal, report.notes)
    s.state["check"] = report


def _folds_path(s: Scale) -> Path:
    return s.work / "folds" / f"{s.data.name}-k{K}-s42.csv"


def _unlink_folds(s: Scale) -> None:
    _folds_path(s).unlink(missing_ok=True)


def _folds_create(s: Scale) -> None:
    from rockopt.data.folds import load_or_create_folds

    s.state["folds"] = load_or_create_folds(s.state["trainset"], _folds_path(s), K, 42)


def _folds_reuse(s: Scale) -> None:
    from rockopt.data.folds import load_or_create_folds

    assert _folds_path(s).is_file()
    folds = load_or_create_folds(s.state["trainset"], _folds_path(s), K, 42)
    assert np.array_equal(folds.fold, s.state["folds"].fold)


def _cache_dir(s: Scale) -> Path:
    return s.work / "cache"


def _drop_cache(s: Scale) -> None:
    shutil.rmtree(_cache_dir(s), ignore_errors=True)


def _cache_build(s: Scale) -> None:
    from rockopt.data.cache import build_cache

    r = build_cache(s.data, s.cache_size, cache_dir=_cache_dir(s), progress=False)
    assert r.built == len(r.cache) and not (s.generated and r.unreadable)


def _ensure_cache(s: Scale) -> None:
    from rockopt.data.cache import build_cache

    build_cache(s.data, s.cache_size, cache_dir=_cache_dir(s), progress=False)  # complete: only checks


def _cache_open(s: Scale) -> None:
    from rockopt.data.readers import CachedReader, open_reader

    reader = open_reader(s.state["trainset"].abs_paths(), s.data, mode="auto", size=s.cache_size, cache_dir=_cache_dir(s))
    assert isinstance(reader, CachedReader), reader.describe()


def _fold_outputs(s: Scale, out: Path, seed: int) -> None:
    """What `cv` leaves in fold-K/ before assembling: oof.npz, test.npz, done.json (random logits)."""
    folds, ts = s.state["folds"], s.state["trainset"]
    n_test, c = len(s.state["test_ids"]), len(ts.classes)
    rng = np.random.default_rng(seed)
    if out.exists():
        shutil.rmtree(out)
    for k in range(folds.k):
        d = out / f"fold-{k}"
        d.mkdir(parents=True)
        _, val = folds.split(k)
        logits = rng.standard_normal((len(val), c), dtype=np.float32) + 2 * np.eye(c, dtype=np.float32)[ts.labels[val]]
        np.savez(d / "oof.npz", index=val, logits=logits, ok=np.ones(len(val), bool))
        np.savez(d / "test.npz", logits=rng.standard_normal((n_test, c), dtype=np.float32))
        (d / "done.json").write_text(json.dumps({"fold": k, "val_f1": 0.5, "tta": "none", "mlflow_run_id": "bench"}))


def _member_dir(s: Scale, m: int) -> Path:
    return s.work / "members" / f"member-{m}"


def _prepare_assembly(s: Scale) -> None:
    from rockopt.predict import test_images

    s.state["test_ids"] = test_images(s.data)[0] if (s.data / "test.csv").is_file() else []
    _fold_outputs(s, _member_dir(s, 0), seed=0)


def _assemble(s: Scale, m: int = 0) -> None:
    from rockopt.ensemble.members import assemble_member

    assemble_member(_member_dir(s, m), s.state["trainset"], s.state["folds"], "none", s.state["test_ids"], {}, "bench")
    s.state.setdefault("assembled", set()).add(m)


def _prepare_members(s: Scale) -> None:
    """Members 0..M-1 assembled in this run (member 0: by the assembly stage, unless it was left out)."""
    if "test_ids" not in s.state:
        _prepare_assembly(s)
    for m in range(s.members):
        if m not in s.state.get("assembled", ()):
            _fold_outputs(s, _member_dir(s, m), seed=m)
            _assemble(s, m)


def _load_members(s: Scale) -> None:
    from rockopt.ensemble.members import check_compatible, load_member

    members = [load_member(_member_dir(s, m)) for m in range(s.members)]
    check_compatible(members)
    assert len(members[0].oof_logits) == s.n


STAGES: list[Stage] = [
    Stage("layout scan (scan_train)", _scan, ensure=_scan),
    Stage("data check (check_dataset, train + test decoded)", _check),
    Stage("folds: create (5 folds, CSV written)", _folds_create, _unlink_folds, ensure=_folds_create),
    Stage("folds: reuse (CSV read, fingerprint checked)", _folds_reuse),
    Stage("cache build ({size} px, train + test)", _cache_build, _drop_cache),
    Stage("cache: open (open_reader: rows + a stat per file)", _cache_open, _ensure_cache),
    Stage("cv: OOF assembly (assemble_member, 5 folds)", _assemble, _prepare_assembly),
    Stage("blend: load {members} members (load_member + check)", _load_members, _prepare_members),
]


Rows = list[tuple[str, list[float | None]]]
_cpu_rows: Rows = []  # stage_rows' CPU seconds, for the section after it


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the decoding workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def stage_rows(scales: list[Scale], a: argparse.Namespace) -> Rows:
    """(stage name, wall seconds at each scale) for every stage of STAGES, in order; the fastest of --repeat."""
    rows = []
    _cpu_rows.clear()
    for stage in STAGES:
        name = stage.name.format(size=a.cache_size, members=a.members)
        chosen = not a.only or any(word in name for word in a.only)
        cells: list[float | None] = []
        cpus: list[float | None] = []
        for s in scales:
            if not chosen:
                if stage.ensure:
                    stage.ensure(s)
                cells.append(None)
                cpus.append(None)
                continue
            best, best_cpu = float("inf"), 0.0
            for _ in range(a.repeat):
                if stage.prepare:
                    stage.prepare(s)
                c0, t0 = _cpu(), time.perf_counter()
                stage.run(s)
                wall, cpu = time.perf_counter() - t0, _cpu() - c0
                if wall < best:
                    best, best_cpu = wall, cpu
            cells.append(best)
            cpus.append(best_cpu)
            print(f"  N = {s.n:,}: {name}: {best:.2f} s ({best_cpu:.2f} s CPU)", flush=True)
        rows.append((name, cells))
        _cpu_rows.append((name, cpus))
    return rows


def stage_cpu_rows(scales: list[Scale], a: argparse.Namespace) -> Rows:
    """The CPU seconds (this process + its workers) of the runs stage_rows timed."""
    return list(_cpu_rows)


def host_step_rows(scales: list[Scale], a: argparse.Namespace) -> Rows:
    """Host cost per optimizer step at each N, per sampler mode: what the GPU would wait for
    (benchmarks/host_step.py: draw, update, chunking, collate, receive and hand-over; batch 64,
    224 px, 2 loader workers, hnm_memory 32,768), in the main thread's CPU seconds."""
    from host_step import host_cost

    rows: Rows = []
    for mode in ("uniform", "balanced", "hnm"):
        costs = [host_cost(mode, s.n, steps=300) for s in scales]
        rows.append((f"{mode}: draw + update", [(c["draw"] + c["update"]) / 1e3 for c in costs]))
        rows.append((f"{mode}: whole host path", [c["total"] / 1e3 for c in costs]))
    return rows


# each section: its table's first header cell and the function measuring its rows (scales, args)
SECTIONS: list[tuple[str, Callable[[list[Scale], argparse.Namespace], Rows]]] = [
    ("stage (wall s)", stage_rows),
    ("stage (CPU s, this process + its workers)", stage_cpu_rows),
    ("host cost per optimizer step (s)", host_step_rows),
]


def photo_costs(work: Path, n: int) -> list[tuple[str, float]]:
    """(what, ms per image, one process) on N photos of Dacon's size: the per-image decoding
    that the tables' small JPEGs leave out, to scale the decoding stages to the real data."""
    from rockopt.data.check import _inspect
    from rockopt.data.images import decode_rgb

    from _common import make_photo_data

    paths = [str(p) for p in sorted((make_photo_data(work / "photos", n) / "train").rglob("*.jpg"))]
    rows = []
    for what, f in (
        ("data check (read, hash, decode)", lambda p: _inspect(p)),
        ("cache build at 256 px (decode_rgb at reduced DCT scale, resize)", lambda p: decode_rgb(p, shorter=256)),
    ):
        f(paths[0])  # warm
        t0 = time.perf_counter()
        for p in paths:
            f(p)
        rows.append((what, (time.perf_counter() - t0) / len(paths) * 1e3))
    return rows


def _import_all() -> None:
    """Import what the stages use before any timing: the first stage to import sklearn or mlflow would pay for it."""
    import rockopt.cv  # noqa: F401  (tracked_run, tracking, predict)
    import rockopt.data.cache  # noqa: F401
    import rockopt.data.check  # noqa: F401
    import rockopt.data.folds  # noqa: F401
    import rockopt.data.readers  # noqa: F401
    import rockopt.ensemble.members  # noqa: F401


# -- the table ------------------------------------------------------------------------------


def _cell(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v >= 0.0095 else f"{v * 1e3:.2f} ms"


def _growth(cells: list[float | None], ns: list[int]) -> str:
    """Cost ratio last/first over N ratio last/first: ~1 linear, >1 super-linear."""
    pts = [(n, v) for n, v in zip(ns, cells) if v]
    if len(pts) < 2 or pts[0][1] < 0.005:
        return ""
    (n0, v0), (n1, v1) = pts[0], pts[-1]
    return f"{(v1 / v0) / (n1 / n0):.2f}"


def print_table(title: str, rows: Rows, ns: list[int]) -> None:
    growth = len(ns) > 1
    head = [title] + [f"N = {n:,}" for n in ns] + (["growth / N growth"] if growth else [])
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name, cells in rows:
        line = [name] + [_cell(v) for v in cells] + ([_growth(cells, ns)] if growth else [])
        print("| " + " | ".join(line) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[380_020], help="training images per data set (test: N/4)")
    ap.add_argument("--data", type=Path, default=None, help="measure this Dacon-layout data set instead of generated ones")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rockopt-dacon"), help="generated data sets and scratch")
    ap.add_argument("--cache-size", type=int, default=32)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1, help="runs per stage; the fastest counts")
    ap.add_argument("--photos", type=int, default=8, help="1440x1080 photos for the per-photo decoding costs (0: skip)")
    ap.add_argument("--only", nargs="+", default=None, help="time only stages whose name contains one of these words")
    a = ap.parse_args()

    print(f"machine: {machine()}")
    scales = []
    if a.data:
        name = a.data.resolve().name
        scales.append(Scale(a.data, a.work / f"scratch-{name}", a.cache_size, a.members, generated=False))
        print(f"data: {a.data} (given)")
    for n in [] if a.data else a.n:
        root, seconds = make_dacon_data(a.work / f"dacon-n{n}", n)
        made = f"made in {seconds:.0f} s" if seconds else "reused"
        print(f"data: {root}: {n:,} train + {n // 4:,} test JPEGs {IMAGE_WH[0]}x{IMAGE_WH[1]} ({made})")
        scales.append(Scale(root, a.work / f"scratch-n{n}", a.cache_size, a.members, generated=True))
    for s in scales:
        s.work.mkdir(parents=True, exist_ok=True)

    _import_all()
    results = []
    for title, measure in SECTIONS:
        rows = measure(scales, a)
        if rows:
            results.append((title, rows))
    ns = [s.n for s in scales]
    print()
    if a.photos:
        print(f"| per 1440x1080 JPEG (q90, ~0.5 MB), one process, {a.photos} photos | ms |")
        print("| --- | --- |")
        for what, ms in photo_costs(a.work, a.photos):
            print(f"| {what} | {ms:.1f} |")
        print()
    for title, rows in results:
        print_table(title, rows, ns)
        print()
    if len(ns) > 1:
        print(f"growth / N growth: (cost at N = {ns[-1]:,} / cost at N = {ns[0]:,}) / ({ns[-1]:,} / {ns[0]:,}); 1.0 = linear")


if __name__ == "__main__":
    main()
