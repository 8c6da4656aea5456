"""`train --resume PATH`: a missing path, a file, or a run that cannot go on is refused with one
line saying what is wrong with it, before anything announces that the run continues."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TINY


def _one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    assert "continuing" not in err, err
    return lines[0]


def test_a_missing_directory_is_named_as_missing(run_cli, workdir):
    line = _one_line_error(*run_cli("train", "--resume", workdir / "nowhere")[::2], "nowhere", "no such")
    assert "never finished an epoch" not in line


def test_a_run_directory_without_last_pt_never_finished_an_epoch_and_another_is_no_run_directory(run_cli, workdir):
    (workdir / "run").mkdir()
    (workdir / "run" / "config.yaml").write_text("epochs: 3\n")
    _one_line_error(*run_cli("train", "--resume", workdir / "run")[::2], "never finished an epoch")
    (workdir / "other").mkdir()
    _one_line_error(*run_cli("train", "--resume", workdir / "other")[::2], "other", "not the directory of a `rockopt train` run")


def test_the_last_pt_file_names_its_run_and_a_finished_run_is_refused_before_continuing(run_cli, demo_data):
    sets = [word for k, v in TINY.items() for word in ("--set", f"{k}={v}")]
    code, _, err = run_cli("train", "--data", demo_data, *sets, "-q")
    assert code == 0, err
    (run_dir,) = sorted(Path("runs/train").iterdir())
    for given in (run_dir, run_dir / "last.pt"):
        line = _one_line_error(*run_cli("train", "--resume", given)[::2], "already finished its 1 epochs")
        assert "last.pt/last.pt" not in line
    _one_line_error(*run_cli("train", "--resume", run_dir, "--set", "lr=0.1")[::2], "lr")
    _one_line_error(*run_cli("train", "--resume", run_dir / "config.yaml")[::2], "config.yaml", "not a run directory")
