"""Every user mistake: one line on stderr naming the culprit, exit code 2, no traceback."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import TINY


def _sets(**extra):
    out = []
    for k, v in {**TINY, **extra}.items():
        out += ["--set", f"{k}={v}"]
    return out


def _one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_data_dir(run_cli, tmp_path):
    code, _, err = run_cli("train", "--data", tmp_path / "nope", *_sets())
    _one_line_error(code, err, "data directory not found", "nope")
    code, _, err = run_cli("data", "check", "--data", tmp_path / "nope")
    _one_line_error(code, err, "nope")


def test_no_class_folders(run_cli, tmp_path):
    (tmp_path / "d" / "train").mkdir(parents=True)
    code, _, err = run_cli("train", "--data", tmp_path / "d", *_sets())
    _one_line_error(code, err, "no class folders")


def test_class_with_no_readable_image(run_cli, demo_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(demo_data, root)
    for f in (root / "train" / "Marble").iterdir():
        f.write_bytes(b"\xff\xd8 broken")
    code, _, err = run_cli("train", "--data", root, *_sets())
    _one_line_error(code, err, "class 'Marble' has no readable image")


def test_unknown_backbone_suggests_close_timm_names(run_cli, demo_data):
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone="resnet51"))
    _one_line_error(code, err, "unknown backbone 'resnet51'", "resnet50")


@pytest.mark.parametrize("where", ["file", "set"])
def test_unknown_config_key_or_wrong_type(run_cli, demo_data, tmp_path, where):
    if where == "file":
        f = tmp_path / "my.yaml"
        f.write_text("epochs: 1\nbatchsize: 8\n")
        code, _, err = run_cli("train", "--config", f, "--data", demo_data)
        _one_line_error(code, err, "my.yaml", "unknown key 'batchsize'", "batch_size")
    else:
        code, _, err = run_cli("train", "--data", demo_data, "--set", "epochs=lots")
        _one_line_error(code, err, "key 'epochs'", "lots")


def test_weights_file_missing(run_cli, demo_data, tmp_path):
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone="tf_efficientnet_lite0", pretrained_file=tmp_path / "w.safetensors"))
    _one_line_error(code, err, "pretrained_file not found", "w.safetensors")


def test_weights_file_for_another_backbone(run_cli, demo_data, lite0):
    # lite1 is deeper than lite0: timm would load the shared layers and leave the rest random
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone="tf_efficientnet_lite1", pretrained_file=lite0))
    _one_line_error(code, err, "does not match backbone 'tf_efficientnet_lite1'", "missing")
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone="resnet18", pretrained_file=lite0))
    _one_line_error(code, err, "resnet18", str(lite0.name))


def test_fold_out_of_range(run_cli, demo_data):
    code, _, err = run_cli("train", "--data", demo_data, "--fold", "7", *_sets())
    _one_line_error(code, err, "--fold 7 is out of range", "0..4")


def test_hub_weights_unreachable_says_how_to_go_offline(demo_data):
    import os
    import subprocess
    import sys

    # offline mode is read when huggingface_hub is imported: use a fresh process
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "rockopt", "train", "--data", str(demo_data), *_sets(backbone="resnet18", pretrained="true")]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    _one_line_error(p.returncode, p.stderr, "resnet18", "pretrained_file=PATH")
