from __future__ import annotations

import shutil


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_check_counts_classes_and_passes_a_clean_set(run_cli, demo_data):
    code, out, err = run_cli("data", "check", "--data", demo_data, "-q", "--workers", "1")
    assert code == 0, err
    assert "Basalt" in out and "ok" in out


def test_check_lists_truncated_images_conflicts_and_missing_test_files(run_cli, demo_data, tmp_path):
    root = _copy(demo_data, tmp_path / "d")
    files = sorted((root / "train" / "Basalt").iterdir())
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])  # truncated JPEG
    files[1].write_bytes(b"not an image")
    shutil.copy(files[2], root / "train" / "Granite" / "copy.jpg")  # same bytes, two labels
    (root / "test" / "TEST_00001.jpg").unlink()
    code, out, err = run_cli("data", "check", "--data", root, "-q", "--workers", "2")
    assert code == 1
    assert f"train/Basalt/{files[0].name}" in out and "truncated" in out
    assert f"train/Basalt/{files[1].name}" in out
    assert "different classes" in out and "train/Granite/copy.jpg" in out
    assert "./test/TEST_00001.jpg" in out
    assert "fatal: 1 test.csv row(s) name a missing file" in out


def test_check_fails_for_a_class_with_no_readable_image(run_cli, demo_data, tmp_path):
    root = _copy(demo_data, tmp_path / "d")
    for f in (root / "train" / "Schist").iterdir():
        f.write_bytes(b"broken")
    code, out, _ = run_cli("data", "check", "--data", root, "-q", "--workers", "1")
    assert code == 1 and "class 'Schist' has no readable image" in out


def test_training_only_set_without_test_files_is_fine(run_cli, demo_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(demo_data / "train", root / "train")
    code, out, _ = run_cli("data", "check", "--data", root, "-q", "--workers", "1")
    assert code == 0 and "training-only" in out


def test_the_report_counts_unreadable_training_images_per_class(demo_data, tmp_path):
    from rockopt.data.check import check_dataset

    root = _copy(demo_data, tmp_path / "d")
    for f in sorted((root / "train" / "Basalt").iterdir())[:2]:
        f.write_bytes(b"not an image")
    (root / "test" / "TEST_00002.jpg").write_bytes(b"not an image")  # a test file is in no class
    report = check_dataset(root, progress=False)
    assert report.unreadable_per_class == {"Basalt": 2}
    assert len(report.unreadable) == 3
