"""What more than one command prints: a data check's report, a search's summary, a study's top trials."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from rockopt.data.check import CheckReport
    from rockopt.search.export import BestTrials
    from rockopt.search.runner import SearchSummary


def check_report(report: CheckReport, out: Console) -> None:
    """A data check's table and findings (`rockopt data check`, `rockopt demo`), without its verdict."""
    from rich.table import Table

    d = report.data
    counts = d.counts()
    table = Table(title=f"{d.root} — {len(d)} training images, {len(d.classes)} classes")
    for col, justify in (("class", "left"), ("images", "right"), ("share", "right"), ("unreadable", "right")):
        table.add_column(col, justify=justify)
    for name, n in zip(d.classes, counts):
        table.add_row(name, str(n), f"{n / len(d):.1%}" if len(d) else "-", str(report.unreadable_per_class.get(name, "")))
    out.print(table)
    if counts.min() > 0:  # an empty class is listed as fatal below
        out.print(f"imbalance: largest class / smallest class = {counts.max() / counts.min():.1f}")
    out.print(f"test images: {report.test_images}")
    _findings(report, out)


def _findings(report: CheckReport, out: Console) -> None:
    if report.unreadable:
        out.print(f"[yellow]{len(report.unreadable)} unreadable or truncated image(s) (training skips them):")
        for path, why in report.unreadable:
            out.print(f"  {path}: {why}", markup=False)
    if report.conflicts:
        out.print(f"[yellow]{len(report.conflicts)} file(s) appear byte-identical under different classes:")
        for group in report.conflicts:
            out.print("  " + "  ==  ".join(group), markup=False)
    if report.test_missing:
        out.print(f"[red]test.csv rows whose file is missing ({len(report.test_missing)}):")
        for p in report.test_missing[:20]:
            out.print(f"  {p}", markup=False)
    for note in report.notes:
        out.print(f"note: {note}")
    for problem in report.fatal:
        out.print(f"[red]fatal: {problem}")


def search_summary(s: SearchSummary) -> None:
    """The summary line and parent run of a search; an interrupted one says how to go on, and exits 130."""
    from rockopt.report import safe_print

    # plain writes that survive a reader gone with the same Ctrl-C (`| tee`): the exit code stays 130
    safe_print(s.line() + f"; MLflow parent run {s.parent_run_id}")
    if s.interrupted:
        what = f"trial {s.requeued} is marked FAIL and queued again; " if s.requeued is not None else ""
        safe_print(f"interrupted: {what}run the same command again to continue the study", err=True)
        raise typer.Exit(130)


def trials_table(best: BestTrials, title: bool = True) -> Table:
    """The top trials, best first; the title counts the study's trials by state."""
    from rich.table import Table

    counts = ", ".join(f"{v} {k.lower()}" for k, v in best.counts.items())
    table = Table(title=f"study {best.study_name}: {counts}" if title else None)
    for col in ("#", "trial", "value", "epochs", *best.params, "MLflow run"):
        table.add_column(col, justify="right" if col in ("#", "trial", "value", "epochs") else "left")
    for rank, t in enumerate(best.trials, 1):
        cells = [_cell(t.params.get(k, "")) for k in best.params]
        table.add_row(str(rank), str(t.number), f"{t.value:.4f}", str(t.user_attrs.get("epochs", "")), *cells, t.user_attrs.get("mlflow_run_id", ""))
    return table


def _cell(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
