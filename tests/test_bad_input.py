"""Every user mistake: one line on stderr naming the culprit, exit code 2, no traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
    # and the other way: every layer of lite0 is in lite1's file, whose extra blocks would be dropped
    lite1 = lite0.with_name(lite0.name.replace("lite0", "lite1"))
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone="tf_efficientnet_lite0", pretrained_file=lite1))
    _one_line_error(code, err, "does not match backbone 'tf_efficientnet_lite0'", "not in the model")
    assert "Unexpected keys" not in err  # timm's one line of every key name


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


# --- output paths that cannot be written: one line before any work or any result -----------


@pytest.fixture
def unwritable(tmp_path):
    """A path that cannot be created even as root: it lies under a regular file."""
    (tmp_path / "afile.txt").write_text("a file, not a directory")
    return tmp_path / "afile.txt" / "sub"


def _tiny_member(path, seed):
    import json

    import numpy as np

    y = np.arange(60) % 3  # the same samples in every member; only the noise differs
    logits = 2 * np.eye(3)[y] + np.random.default_rng(seed).normal(0, 1, (60, 3))
    path.mkdir(parents=True)
    np.savez(path / "oof.npz", ids=np.asarray([f"train/c{c}/{i}.jpg" for i, c in enumerate(y)]), labels=y, fold=np.arange(60) % 3, logits=logits.astype(np.float32))
    np.savez(path / "test.npz", ids=np.asarray(["T0", "T1"]), logits=logits[:2].astype(np.float32))
    (path / "member.json").write_text(json.dumps({"name": path.name, "classes": ["c0", "c1", "c2"], "folds_fingerprint": "f" * 16}))
    return path


def test_blend_out_unwritable(run_cli, tmp_path, unwritable):
    members = [_tiny_member(tmp_path / "m1", 1), _tiny_member(tmp_path / "m2", 2)]
    code, out, err = run_cli("blend", "--members", *members, "--method", "mean", "--out", unwritable)
    _one_line_error(code, err, "--out", str(unwritable), "cannot write there")
    assert out == ""  # no scores table, no "wrote" line


def test_predict_out_unwritable(run_cli, demo_data, unwritable, monkeypatch):
    import rockopt.predict

    def no_work(*args, **kwargs):
        raise AssertionError("predicted before checking --out")

    monkeypatch.setattr(rockopt.predict, "predict_dir", no_work)
    code, out, err = run_cli("predict", "--model", demo_data, "--data", demo_data, "--out", unwritable / "sub.csv")
    _one_line_error(code, err, "--out", "sub.csv", "cannot write there")
    assert out == ""


def test_best_export_unwritable(run_cli, tmp_path, unwritable):
    import optuna

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs={"config": dict(TINY)}))
    code, out, err = run_cli("best", "--study", "s", "--storage", url, "--export", unwritable)
    _one_line_error(code, err, "--export", str(unwritable), "cannot write there")
    assert "exported" not in out


def test_cache_dir_unwritable(run_cli, demo_data, unwritable):
    code, _, err = run_cli("train", "--data", demo_data, *_sets(cache="build", cache_dir=unwritable))
    _one_line_error(code, err, "cache_dir", str(unwritable), "cannot write there")
    code, out, err = run_cli("data", "cache", "--data", demo_data, "--size", "32", "--cache-dir", unwritable, "-q")
    _one_line_error(code, err, "cache_dir", str(unwritable), "cannot write there")
    assert out == ""


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_storage_path_unwritable(run_cli, demo_data, tmp_path, unwritable, kind):
    import yaml

    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump({"budget": {"n_trials": 1, "max_epochs": 1}, "fixed": {"backbone": "test_efficientnet", "pretrained": False}}))
    url = f"sqlite:///{unwritable / 'x.db'}" if kind == "sqlite" else str(unwritable / "x.journal")
    code, out, err = run_cli("search", "--study", study, "--data", demo_data, "--storage", url, "-q")
    _one_line_error(code, err, "storage", str(unwritable), "cannot write there")
    assert out == ""


# --- a backbone that is not a model factory ---------------------------------------------------


@pytest.mark.parametrize(
    "backbone, needle",
    [("os:getcwd", "calling it with num_classes failed"), ("builtins:dict", "returned dict, not a torch nn.Module")],
)
def test_backbone_callable_that_is_not_a_model_factory(run_cli, demo_data, backbone, needle):
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone=backbone))
    _one_line_error(code, err, f"backbone '{backbone}'", "not a model factory", needle)


# --- a database-server storage URL without a database -----------------------------------------


@pytest.mark.parametrize(
    "url",
    ["postgresql://user:secret@localhost:5432", "postgresql://user:secret@localhost:5432/", "mysql+pymysql://user:secret@localhost"],
)
def test_server_storage_without_database_is_refused_before_connecting(run_cli, monkeypatch, url):
    import optuna

    def no_connection(*args, **kwargs):
        raise AssertionError("connected to the server")

    monkeypatch.setattr(optuna.storages, "RDBStorage", no_connection)
    code, _, err = run_cli("best", "--study", "s", "--storage", url)
    _one_line_error(code, err, "names no database", "user:***@localhost")
    assert "secret" not in err


def test_server_storage_with_a_database_goes_on_to_connect(monkeypatch):
    import optuna

    from rockopt.search.storage import open_storage

    seen = []
    monkeypatch.setattr(optuna.storages, "RDBStorage", lambda url, **kw: seen.append(url) or "storage")
    assert open_storage("postgresql://user:secret@localhost:5432/rockopt") == "storage"
    assert seen == ["postgresql://user:secret@localhost:5432/rockopt"]


# --- a `when:` value the named parameter can never take ---------------------------------------


def _study_with(tmp_path, space):
    import yaml

    path = tmp_path / "when.yaml"
    path.write_text(yaml.safe_dump({"budget": {"n_trials": 1, "max_epochs": 1}, "fixed": {"backbone": "test_efficientnet"}, "space": space}, sort_keys=False))
    return path


HNM = {"type": "float", "low": 0.1, "high": 0.5}


@pytest.mark.parametrize(
    "space, key, value",
    [
        ({"sampler_mode": ["uniform", "hnm"], "hnm_ratio": {**HNM, "when": {"sampler_mode": "hnmm"}}}, "space.hnm_ratio.when", "'hnmm'"),
        ({"sampler_mode": ["uniform", "hnm"], "hnm_ratio": {**HNM, "when": {"sampler_mode": ["hnm", "hnmm"]}}}, "space.hnm_ratio.when", "'hnmm'"),
        ({"accumulation_steps": {"type": "int", "low": 1, "high": 4}, "lr": {**HNM, "when": {"accumulation_steps": 8}}}, "space.lr.when", "8"),
        ({"label_smoothing": {"type": "float", "low": 0.0, "high": 0.2}, "lr": {**HNM, "when": {"label_smoothing": 0.5}}}, "space.lr.when", "0.5"),
        ({"accumulation_steps": {"type": "int", "low": 1, "high": 4}, "lr": {**HNM, "when": {"accumulation_steps": "two"}}}, "space.lr.when", "'two'"),
    ],
    ids=["choice", "one-of-a-list", "int-range", "float-range", "not-a-number"],
)
def test_when_value_that_can_never_occur(run_cli, tmp_path, space, key, value):
    code, _, err = run_cli("search", "--study", _study_with(tmp_path, space), "-q")
    _one_line_error(code, err, "when.yaml", f"key '{key}'", f"can never be {value}")


def test_when_values_that_can_occur_load(tmp_path):
    from rockopt.search.study_file import load_study_file

    space = {
        "sampler_mode": ["uniform", "hnm"],
        "accumulation_steps": {"type": "int", "low": 1, "high": 4},
        "hnm_ratio": {**HNM, "when": {"sampler_mode": ["hnm"], "accumulation_steps": [1, 4]}},
    }
    spec, _ = load_study_file(_study_with(tmp_path, space))
    assert spec.space["hnm_ratio"].when == {"sampler_mode": ["hnm"], "accumulation_steps": [1, 4]}


# --- unreadable images are named by their file, never by a file object ------------------------


def test_zero_byte_image_is_named_by_its_path(run_cli, demo_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(demo_data, root)
    empty = sorted((root / "train" / "Basalt").iterdir())[0]
    empty.write_bytes(b"")
    code, out, err = run_cli("data", "check", "--data", root, "-q", "--workers", "1")
    assert code == 0, out + err  # one bad file in a class of readable ones: training skips it
    line = next(l for l in out.splitlines() if empty.name in l)
    assert f"train/Basalt/{empty.name}" in line and "empty file" in line
    assert "BytesIO" not in out + err


def test_unreadable_image_messages_name_the_file(tmp_path):
    from rockopt.data.images import decode_rgb
    from rockopt.errors import UnreadableImage

    f = tmp_path / "x.jpg"
    for content in (b"", b"not an image"):
        f.write_bytes(content)
        for data, name in ((f, None), (str(f), None), (content, f)):
            with pytest.raises(UnreadableImage) as e:
                decode_rgb(data, name=name)
            assert str(e.value).startswith(f"{f}: ") and "BytesIO" not in str(e.value)


def test_one_class_is_refused_by_check_and_train(run_cli, demo_data, tmp_path):
    root = tmp_path / "one"
    (root / "train").mkdir(parents=True)
    shutil.copytree(demo_data / "train" / "Basalt", root / "train" / "Basalt")
    for cmd in (("data", "check", "--data", root, "-q"), ("train", "--data", root, *_sets())):
        code, _, err = run_cli(*cmd)
        _one_line_error(code, err, f"{root / 'train'}: one class folder ('Basalt'); a classifier needs at least two")


# --- an empty class folder: a fatal problem of a data set, not "no data set" -----------------


def test_data_check_empty_class_folder_is_fatal_exit_1(run_cli, demo_data, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(demo_data, root)
    (root / "train" / "Empty").mkdir()
    code, out, err = run_cli("data", "check", "--data", root, "-q", "--workers", "1")
    assert code == 1, out + err
    assert "fatal: class 'Empty' has no images" in out and "Traceback" not in err
    code, _, err = run_cli("train", "--data", root, *_sets())  # training still refuses it, as a usage error
    _one_line_error(code, err, "class 'Empty' has no images")


def test_version_and_a_tracking_server_ui(run_cli, monkeypatch):
    import rockopt

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"rockopt {rockopt.__version__}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://user:secret@mlflow.example:5000")
    code, out, err = run_cli("ui")  # a server has its own UI: say where, start nothing
    assert code == 0 and "http://user:***@mlflow.example:5000" in out and "secret" not in out + err


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://postgres:s3cret@127.0.0.1/db", "postgresql://postgres:***@127.0.0.1/db"),
        ("postgresql://:s3cret@127.0.0.1:5999/x", "postgresql://:***@127.0.0.1:5999/x"),
        ("postgresql://postgres:s3c@ret@127.0.0.1/x", "postgresql://postgres:***@127.0.0.1/x"),  # an unescaped @ in it
        ("postgresql://postgres@127.0.0.1/db?password=s3cret", "postgresql://postgres@127.0.0.1/db?password=***"),
        ("mysql+pymysql://u@h/db?charset=utf8&PASSWD=s3cret&x=1", "mysql+pymysql://u@h/db?charset=utf8&PASSWD=***&x=1"),
        ("cannot open storage postgresql://u:s3cret@h/db: timeout", "cannot open storage postgresql://u:***@h/db: timeout"),
        ("sqlite:///studies/quick.db", "sqlite:///studies/quick.db"),
        ("postgresql://postgres@127.0.0.1:5432/rockopt", "postgresql://postgres@127.0.0.1:5432/rockopt"),
    ],
)
def test_a_url_password_is_masked_in_every_form(url, shown):
    from rockopt.tracking import mask_url

    assert mask_url(url) == shown


def test_ui_hands_the_store_to_mlflow_by_environment_not_argv(run_cli, monkeypatch):
    """A password in the store's URL would show in `ps` as an argument."""
    import os

    started = {}
    monkeypatch.setattr(os, "execvp", lambda file, args: started.update(args=args, store=os.environ.get("MLFLOW_BACKEND_STORE_URI")))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://postgres:s3cret@127.0.0.1/mlflow")
    monkeypatch.delenv("MLFLOW_BACKEND_STORE_URI", raising=False)
    code, _, err = run_cli("ui", "--port", "5055")
    assert code == 0, err
    assert started["store"] == "postgresql://postgres:s3cret@127.0.0.1/mlflow"
    assert not any("s3cret" in a for a in started["args"]) and "5055" in started["args"]


def test_hub_weights_that_cannot_be_had_fail_at_once_and_a_study_needing_them_before_it_starts(run_cli, demo_data, tmp_path, monkeypatch):
    """Offline, the hub client retries for about a minute a trial; rockopt answers at once."""
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    code, _, err = run_cli("train", "--data", demo_data, *_sets(backbone="test_efficientnet", pretrained="true"))
    _one_line_error(code, err, "pretrained weights for 'test_efficientnet' are not in the local caches", "pretrained_file=PATH")
    assert time.perf_counter() - t0 < 20
    study = tmp_path / "s.yaml"
    study.write_text(
        f"data: {{path: {demo_data}, image_size: 32}}\nfixed: {{pretrained: true}}\n"
        "space: {backbone: [test_efficientnet, test_vit], lr: {type: float, low: 0.001, high: 0.01}}\n"
    )
    code, _, err = run_cli("search", "--study", study, "-q")
    _one_line_error(code, err, "'test_efficientnet', 'test_vit' are not in the local caches")
    assert not (tmp_path / "studies").exists() or not list((tmp_path / "studies").iterdir())  # refused before anything was made



@pytest.mark.parametrize(
    "uri, says",
    [
        ("postgresql://postgres:s3cret@127.0.0.1:1/x", "cannot open the MLflow store postgresql://postgres:***@127.0.0.1:1/x"),
        ("http://user:s3cret@127.0.0.1:1", "cannot reach the MLflow tracking server http://user:***@127.0.0.1:1"),
    ],
)
def test_an_mlflow_store_that_does_not_answer_is_one_line_at_once(run_cli, demo_data, monkeypatch, uri, says):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    code, _, err = run_cli("train", "--data", demo_data, *_sets())
    _one_line_error(code, err, says)
    assert "s3cret" not in err


def test_a_reader_that_went_away_ends_rockopt_by_sigpipe_not_a_failure_code(demo_data, tmp_path):
    """`rockopt ... | head -1`: exit 1 would read as `data check`'s "fatal problems found"."""
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for args in (["--help"], ["data", "check", "--data", str(demo_data), "--workers", "1"]):
        p = subprocess.Popen([sys.executable, "-m", "rockopt", *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        p.stdout.close()  # before it writes a word
        assert p.wait(timeout=120) == -signal.SIGPIPE, args
    root = tmp_path / "d"
    shutil.copytree(demo_data, root)
    (root / "train" / "Empty").mkdir()
    with open(os.devnull, "w") as null:  # a real exit code, written to /dev/null, stays what it is
        p = subprocess.run([sys.executable, "-m", "rockopt", "data", "check", "--data", str(root), "--workers", "1"], stdout=null, env=env)
    assert p.returncode == 1
