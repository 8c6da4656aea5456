"""`rockopt data ...`: look at a data set before training on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rockopt.cli._options import Command, Group, QuietOpt, console

app = typer.Typer(help="Check or generate data sets.", no_args_is_help=True, cls=Group)


@app.command("check", cls=Command)
def check(
    data: Annotated[Path, typer.Option("--data", help="Data set directory.")],
    workers: Annotated[int | None, typer.Option(help="Decoding processes (default: one per core).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Validate the layout, count images per class, list unreadable files and label conflicts.

    Exit code 0: usable; 1: fatal problems found (a class folder that is empty or has no readable image, missing test files, a mismatched template); 2: not a data set at all.
    """  # help text: typer keeps a paragraph's source line breaks, so each is one line
    import os

    from rockopt.cli.show import check_report
    from rockopt.data.check import check_dataset

    report = check_dataset(data, workers=workers or os.cpu_count() or 1, progress=not quiet)
    out = console()
    check_report(report, out)
    if not report.ok:
        raise typer.Exit(1)
    out.print("[green]ok")


@app.command("cache", cls=Command)
def cache(
    data: Annotated[Path, typer.Option("--data", help="Data set directory.")],
    size: Annotated[int, typer.Option("--size", help="Shorter side of the cached images, in pixels (aspect kept, never enlarged).")] = 256,
    cache_dir: Annotated[Path | None, typer.Option(help="Where caches live (default: $ROCKOPT_CACHE_DIR or ~/.cache/rockopt).")] = None,
    workers: Annotated[int | None, typer.Option(help="Decoding processes (default: one per core).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Decode every training and test image once into a memory-mapped cache at SIZE px.

    `train`, `search`, `cv` and `predict` then read the cache instead of the files (settings `cache`, `cache_size`). Interrupted builds resume; a changed data set gets a new cache.
    """  # one line a paragraph, as above
    from rockopt.data.cache import build_cache
    from rockopt.data.layout import scan_train

    scan_train(data)  # a bad layout gets its one-line error before any work
    r = build_cache(data, size, cache_dir=cache_dir, workers=workers, progress=not quiet)
    out = console()
    nbytes = sum(f.stat().st_size for f in r.cache.path.glob("shard-*.u8"))
    what = "already complete" if not r.built else f"{r.built} images decoded in {r.seconds:.1f} s"
    if r.reused and r.built:
        what += f", {r.reused} kept from an interrupted build"
    out.print(f"{r.cache.path}: {len(r.cache)} images at {size} px, {nbytes / 2**20:.1f} MiB ({what})", markup=False)
    if r.unreadable:
        out.print(f"[yellow]{len(r.unreadable)} unreadable image(s) not cached (training skips them), e.g. {r.unreadable[0]}")


@app.command("demo", cls=Command)
def demo_data(
    out: Annotated[Path, typer.Option("--out", help="Where to write the generated data set.")] = Path("runs/demo-data"),
    per_class: Annotated[int, typer.Option(help="Images in the largest class.")] = 30,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 96,
) -> None:
    """Generate a small synthetic data set in the Dacon layout (textures, 6 classes)."""
    from rockopt.data.synthetic import make_demo_data

    root = make_demo_data(out, per_class=per_class, size=size)
    console().print(f"wrote {root}")
