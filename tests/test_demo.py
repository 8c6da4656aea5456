"""`rockopt demo`: the data check, the quick study and its best trials, each said once."""

from __future__ import annotations


def test_the_demo_prints_the_study_summary_once(run_cli, demo_data):
    code, out, err = run_cli(
        "demo", "--data", demo_data, "--n-trials", "1", "-q",
        "--set", "epochs=1", "image_size=32", "num_workers=0", "backbone=test_efficientnet", "pretrained_file=null",
    )  # fmt: skip
    assert code == 0, err
    name = f"quick-{demo_data.name}"
    summary = [line for line in out.splitlines() if line.startswith(f"study {name}:")]
    assert len(summary) == 1, out
    assert summary[0].startswith(f"study {name}: 1 complete, 0 pruned, 0 failed; best ") and "MLflow parent run" in summary[0]
    assert "training images" in out and "ok" in out.splitlines()  # the data check's table and verdict
    assert "MLflow run" in out  # the best trials' table


def test_the_summary_line_says_counts_and_best():
    from rockopt.search.runner import SearchSummary

    s = SearchSummary(
        study_name="s", storage="sqlite:///x.db", parent_run_id="abc", counts={"COMPLETE": 3, "PRUNED": 1, "FAIL": 0, "RUNNING": 0, "WAITING": 0},
        best_value=0.56214, best_trial=2, trials_run=4, interrupted=False, requeued=None, notes=[],
    )  # fmt: skip
    assert s.line() == "study s: 3 complete, 1 pruned, 0 failed; best 0.5621 (trial 2)"
    none_yet = SearchSummary(**{**s.__dict__, "counts": {**s.counts, "COMPLETE": 0}, "best_value": None, "best_trial": None})
    assert none_yet.line() == "study s: 0 complete, 1 pruned, 0 failed"
