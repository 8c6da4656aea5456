"""What is recorded is what ran: resume and --set, concurrent searches, killed workers, MLflow
records of every kind of trial, and what the user sees while a search runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from mlflow.tracking import MlflowClient

from rockopt.cli import expand_sets
from rockopt.config import load_config

REPO = Path(__file__).resolve().parents[1]
STUDY = {
    "description": "what a tiny study asks",
    "data": {"folds": 4, "fold": 0, "image_size": 32},
    "budget": {"n_trials": 2, "max_epochs": 2, "keep_checkpoints": 100},
    "sampler": {"name": "random", "seed": 0},
    "pruner": {"name": "none"},
    "fixed": {"backbone": "tests.custom_model:tiny_cnn", "pretrained": False, "batch_size": 16, "num_workers": 0, "lr": 0.003},
    "space": {"label_smoothing": {"type": "float", "low": 0.0, "high": 0.1}, "sampler_mode": ["uniform", "balanced"]},
}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


def _write_study(workdir: Path, demo_data: Path, **sections) -> Path:
    doc = {**STUDY, "data": {**STUDY["data"], "path": str(demo_data)}, **sections}
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def study_file(workdir, demo_data) -> Path:
    return _write_study(workdir, demo_data)


def _env(extra=None):
    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **(extra or {})}


def _cmd(*args) -> list[str]:
    return [sys.executable, "-m", "rockopt", *map(str, args)]


def _study(name="tiny", storage="sqlite:///studies/tiny.db") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def _runs(name="tiny"):
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    return client, exp, parents, children


def _params_as_config(params: dict[str, str]) -> dict:
    """MLflow params (strings) read back as settings, the way `--set` reads them."""
    from rockopt.config import FIELDS, parse_sets

    return load_config(overrides=parse_sets([f"{k}={'null' if v == 'None' else v}" for k, v in params.items() if k in FIELDS])).flat()


def audit(run, expected: dict, trial: optuna.trial.FrozenTrial | None = None) -> None:
    """MLflow params, config.yaml, the checkpoint the loop wrote and the Optuna trial agree key by
    key, with each other and with EXPECTED; the loop wrote under the recorded out_dir."""
    client = MlflowClient()
    run_dir = Path(run.data.tags["rockopt.run_dir"])
    logged = _params_as_config(run.data.params)
    config_yaml = load_config(client.download_artifacts(run.info.run_id, "config.yaml", str(run_dir.parent))).flat()
    ckpt = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
    used = load_config(overrides=ckpt["config"]).flat()  # written by the loop from the settings it ran with
    records = {"MLflow params": logged, "config.yaml": config_yaml}
    if trial is not None:
        records["Optuna trial"] = load_config(overrides=trial.user_attrs["config"]).flat()
    for what, record in records.items():
        diff = {k: (record[k], used[k]) for k in used if record[k] != used[k]}
        assert not diff, f"{what} differs from what the loop used: {diff}"
    for key, value in expected.items():
        assert used[key] == value, f"{key}: the loop used {used[key]!r}, the user asked for {value!r}"
    assert run_dir.resolve().is_relative_to(Path(used["out_dir"]).resolve()), f"{run_dir} is not under out_dir {used['out_dir']}"


# --- --set: the order typed ---------------------------------------------------------------------


def test_set_words_are_expanded_in_the_order_typed():
    argv = ["train", "--data", "D", "--set", "epochs=1", "image_size=64", "-s", "image_size=abc", "--fold", "0", "x=1"]
    assert expand_sets(argv) == ["train", "--data", "D", "--set", "epochs=1", "--set", "image_size=64", "--set", "image_size=abc", "--fold", "0", "x=1"]
    assert expand_sets(["search", "--set=a=1", "b=2"]) == ["search", "--set", "a=1", "--set", "b=2"]


def test_a_later_set_wins_over_words_after_an_earlier_one(run_cli, demo_data):
    code, _, err = run_cli("train", "--data", demo_data, "--set", "epochs=1", "image_size=64", "--set", "image_size=abc")
    assert code == 2
    assert "image_size" in err and "'abc'" in err and "Traceback" not in err


# --- resume and --set -------------------------------------------------------------------------


def test_a_resumed_study_refuses_a_set_that_changes_its_trials_and_takes_runtime_ones(run_cli, study_file, workdir, demo_data):
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q", "--set", "epochs=1")
    assert code == 0, err
    assert "changed" not in err  # the study was made with this --set: nothing changed

    # what a trial means: refused, one line naming the keys, nothing created
    code, out, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q", "--set", "epochs=2", "batch_size=8")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "epochs=1" in line and "batch_size=16" in line and "--set epochs=2 batch_size=8" in line and "--study-name" in line
    assert len(_study().trials) == 1 and len(_runs()[2]) == 1

    # a searched parameter cannot be fixed either: the trial's value would win
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q", "--set", "label_smoothing=0.05")
    assert code == 2 and "label_smoothing" in err and "searched" in err

    # the same value as stored, and runtime settings: taken, and recorded on the new parent run
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q", "--set", "epochs=1", "cache=off", "save_checkpoint=true")
    assert code == 0, err
    assert "changed" not in err
    trials = _study().trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["config"]["epochs"] == 1 and trials[1].user_attrs["config"]["cache"] == "off"
    client, _, parents, children = _runs()
    newest = max(parents, key=lambda r: r.info.start_time)
    assert newest.data.params["set.cache"] == "off" and "cache=off" in newest.data.tags["rockopt.set"]
    audit(children["trial-1"], {"epochs": 1, "cache": "off"}, trials[1])

    # the budget may change without a note; what the trials mean changing in the file is said, before the first trial
    doc = yaml.safe_load(study_file.read_text())
    doc["budget"]["n_trials"] = 7
    doc["fixed"]["num_workers"] = 0
    study_file.write_text(yaml.safe_dump(doc))
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q")
    assert code == 0, err
    assert "changed" not in err
    audit(_runs()[3]["trial-2"], {"epochs": 1, "cache": "auto"}, _study().trials[2])  # resumed without --set: the stored settings
    doc["fixed"]["lr"] = 0.01
    study_file.write_text(yaml.safe_dump(doc))
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q")
    assert code == 0, err
    assert "changed since study 'tiny' was created" in err
    assert err.index("changed since") < err.index("trial 3 started")
    assert _study().trials[3].user_attrs["config"]["lr"] == 0.003  # the stored settings, as the note says


def test_set_out_dir_is_where_trials_write_and_what_they_record(run_cli, study_file, workdir):
    out = workdir / "elsewhere"
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "1", "-q", "--set", f"out_dir={out}")
    assert code == 0, err
    assert (out / "tiny" / "trial-0000" / "best.pt").is_file()
    assert not (workdir / "runs" / "tiny").exists()
    _, _, _, children = _runs()
    audit(children["trial-0"], {"out_dir": str(out)}, _study().trials[0])


def test_train_and_cv_record_what_they_ran(run_cli, demo_data, workdir):
    sets = ["epochs=1", "image_size=32", "backbone=tests.custom_model:tiny_cnn", "pretrained=false", "num_workers=0", "folds=2", "batch_size=8"]
    code, _, err = run_cli("train", "--data", demo_data, "-q", "--set", *sets, "--set", "batch_size=16")
    assert code == 0, err
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("rockopt-train").experiment_id])
    audit(run, {"epochs": 1, "batch_size": 16, "folds": 2, "image_size": 32})
    config = Path(run.data.tags["rockopt.run_dir"]) / "config.yaml"
    code, _, err = run_cli("cv", "--config", config, "-q", "--set", "lr=0.002", f"out_dir={workdir / 'cv-out'}")
    assert code == 0, err
    folds = [r for r in client.search_runs([client.get_experiment_by_name("rockopt-train").experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(folds) == 2
    for r in folds:
        audit(r, {"lr": 0.002, "batch_size": 16, "out_dir": str(workdir / "cv-out")})


def test_cv_of_an_exported_trial_records_a_recipe_changed_with_set_and_blend_prefers_the_trial_s_own(run_cli, study_file, workdir):
    code, _, err = run_cli("search", "--study", study_file, "-q")
    assert code == 0, err
    assert "next: rockopt best --study" in err
    code, _, err = run_cli("best", "--study", study_file, "--top", "2", "--export", "best")
    assert code == 0 and "next: rockopt cv --config best/trial-" in err, err
    code, _, err = run_cli("cv", "--config", "best/trial-0000/config.yaml", "-q", "--set", "epochs=1", "num_workers=0")
    assert code == 0, err
    assert "note: --set changes trial 0's recipe: epochs=1" in err  # num_workers changes how it runs, not what
    changed = json.loads(Path("runs/members/tiny-trial-0+epochs=1/member.json").read_text())
    assert changed["trial"] == 0 and changed["set"] == {"epochs": 1}
    code, _, err = run_cli("cv", "--config", "best/trial-0001/config.yaml", "-q")
    assert code == 0, err

    def blended(out: str) -> set[str]:
        code, _, err = run_cli("blend", "--study", study_file, "--top", "2", "--out", out)
        assert code == 0, err
        return {m["name"] for m in json.loads(Path(out, "weights.json").read_text())["members"]}

    assert blended("blend1") == {"tiny-trial-0+epochs=1", "tiny-trial-1"}  # the only member of trial 0 there is
    code, _, err = run_cli("cv", "--config", "best/trial-0000/config.yaml", "-q")
    assert code == 0, err
    assert "set" not in json.loads(Path("runs/members/tiny-trial-0/member.json").read_text())
    assert blended("blend2") == {"tiny-trial-0", "tiny-trial-1"}


def test_a_search_refuses_a_missing_data_directory_and_a_trial_count_below_one_and_creates_nothing(run_cli, study_file, workdir):
    code, _, err = run_cli("search", "--study", study_file, "--data", workdir / "no" / "such" / "dir", "-q")
    assert code == 2 and f"data directory {workdir / 'no' / 'such' / 'dir'} does not exist" in err
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "-1", "-q")
    assert code == 2 and "--n-trials must be at least 1, but got -1" in err
    code, _, err = run_cli("search", "--study", study_file, "--n-trials", "0", "--workers", "2", "-q")
    assert code == 2 and "--n-trials must be at least 1, but got 0" in err
    assert not (workdir / "studies").exists() or not list((workdir / "studies").iterdir())
    assert MlflowClient().get_experiment_by_name("tiny") is None


def test_an_interrupted_trial_is_queued_again_keeps_its_checkpoints_and_goes_on_from_its_last_epoch(run_cli, workdir, demo_data, monkeypatch):
    path = _write_study(
        workdir, demo_data,
        budget={"n_trials": 2, "max_epochs": 2, "keep_checkpoints": 1},
        space={"backbone": ["tests.custom_model:tiny_cnn", "tests.custom_model:interrupt_later"]},
    )  # fmt: skip
    (workdir / "studies").mkdir()
    study = optuna.create_study(study_name="tiny", storage="sqlite:///studies/tiny.db", direction="maximize")
    study.enqueue_trial({"backbone": "tests.custom_model:tiny_cnn"})
    study.enqueue_trial({"backbone": "tests.custom_model:interrupt_later"})
    code, _, err = run_cli("search", "--study", path, "-q")
    assert code == 130, err
    trials = _study().trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "WAITING"] and trials[1].user_attrs["epochs"] == 1
    assert Path(trials[0].user_attrs["checkpoint"]).is_file()
    assert Path(trials[0].user_attrs["checkpoint"]).with_name("last.pt").is_file()  # the one kept keeps both
    # written in epoch 1, and kept beyond keep_checkpoints after Ctrl-C in epoch 2: its retry goes on from it
    interrupted = Path(trials[1].user_attrs["checkpoint"])
    assert interrupted.is_file() and interrupted.with_name("last.pt").is_file()
    assert MlflowClient().get_run(trials[1].user_attrs["mlflow_run_id"]).info.status == "KILLED"

    monkeypatch.setenv("ROCKOPT_TEST_NO_INTERRUPT", "1")
    code, _, err = run_cli("search", "--study", path, "--n-trials", "1", "-q")
    assert code == 0, err
    assert "trial 2 retries trial 1, which was interrupted: continuing after its epoch 1" in err
    trials = _study().trials
    assert trials[2].state.name == "COMPLETE" and sorted(trials[2].intermediate_values) == [1, 2]
    assert trials[2].intermediate_values[1] == trials[1].intermediate_values[1]  # epoch 1 is the interrupted trial's
    # consumed: only the best complete trial keeps checkpoints now
    kept = [t.number for t in trials if t.user_attrs.get("checkpoint") and Path(t.user_attrs["checkpoint"]).exists()]
    assert len(kept) == 1 and 1 not in kept


# --- MLflow: every kind of trial for what it is ---------------------------------------------------


def test_mlflow_shows_pruned_trials_for_what_they_are(run_cli, workdir, demo_data):
    path = _write_study(
        workdir,
        demo_data,
        budget={"n_trials": 3, "max_epochs": 3, "keep_checkpoints": 0},
        pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 1},
        space={"backbone": ["tests.custom_model:tiny_cnn", "tests.custom_model:constant", "tests.custom_model:broken"]},
    )
    (workdir / "studies").mkdir()
    study = optuna.create_study(study_name="tiny", storage="sqlite:///studies/tiny.db", direction="maximize")
    for b in ("tiny_cnn", "constant", "broken"):
        study.enqueue_trial({"backbone": f"tests.custom_model:{b}"})
    code, _, err = run_cli("search", "--study", path, "-q", "--set", "lr=0.01")
    assert code == 0, err
    assert [t.state.name for t in _study().trials] == ["COMPLETE", "PRUNED", "FAIL"]
    client, exp, parents, children = _runs()
    pruned, failed = children["trial-1"], children["trial-2"]
    # the value a pruned trial reached, where sorting and parallel coordinates look for it
    assert pruned.data.metrics["best_val_f1"] == pytest.approx(max(m.value for m in client.get_metric_history(pruned.info.run_id, "val_f1")))
    assert pruned.data.metrics["best_val_f1"] < children["trial-0"].data.metrics["best_val_f1"]
    assert (pruned.info.status, pruned.data.tags["trial_state"]) == ("KILLED", "PRUNED")
    assert (failed.info.status, failed.data.tags["trial_state"]) == ("FAILED", "FAIL")
    found = client.search_runs([exp.experiment_id], filter_string="tags.trial_state = 'PRUNED'")
    assert [r.info.run_name for r in found] == ["trial-1"]
    # per-class F1 as one table; the charts start with val_f1
    assert not [k for k in children["trial-0"].data.metrics if k.startswith("val_f1_")]
    assert "val_f1_per_class.json" in {a.path for a in client.list_artifacts(children["trial-0"].info.run_id)}
    # the experiment: the study's description, a model-training experiment; the parent: the study file, best_value as it went
    assert exp.tags["mlflow.note.content"] == "what a tiny study asks"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = parents[0]
    assert "study/tiny.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
    best = client.get_metric_history(parent.info.run_id, "best_value")
    assert sorted({m.step for m in best}) == [1, 2, 3] and best[0].value == pytest.approx(_study().best_value)


# --- what the user sees -----------------------------------------------------------------------------


def test_a_piped_search_logs_notes_trials_and_epochs_and_ctrl_c_still_kills_it(study_file, workdir):
    doc = yaml.safe_load(study_file.read_text())
    doc["fixed"]["backbone"] = "tests.custom_model:slow_when_asked"  # slow only where ROCKOPT_TEST_SLOW is set
    doc["fixed"]["pretrained_file"] = str(workdir / "missing.safetensors")
    doc["optional_files"] = ["pretrained_file"]
    doc["budget"]["n_trials"] = 1
    study_file.write_text(yaml.safe_dump(doc))
    p = subprocess.run(_cmd("search", "--study", study_file), env=_env(), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stderr.splitlines()
    assert lines and all(TIMESTAMP.match(line) for line in lines), p.stderr  # no bars, every line stamped
    text = "\n".join(line[20:] for line in lines)
    assert text.index("note: pretrained_file") < text.index("trial 0 started:")  # notes come first
    assert re.search(r"trial 0 started: label_smoothing=0\.\d{1,5} sampler_mode=\w+\n", text)  # short floats
    for epoch in (1, 2):
        assert re.search(rf"trial 0 epoch {epoch}/2  train_loss \d\.\d+  val_f1 \d\.\d+  best \d\.\d+  .* eta \d+:\d\d", text), text
    assert "trial 0 COMPLETE" in text and "study tiny: 1 complete" in p.stdout

    # Ctrl-C while the reader of the pipe has gone too (`| tee`): the run ends KILLED and the
    # process dies of SIGINT, as a shell expects of a program stopped by Ctrl-C (status 130 there)
    proc = subprocess.Popen(
        _cmd("search", "--study", study_file), env=_env({"ROCKOPT_TEST_SLOW": "1"}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    seen = b""
    deadline = time.time() + 120
    while b"trial 1 started" not in seen and time.time() < deadline:
        seen += proc.stdout.readline()
    assert b"trial 1 started" in seen, seen.decode()
    proc.stdout.close()
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == -signal.SIGINT
    _, _, parents, children = _runs()
    newest = max(parents, key=lambda r: r.info.start_time)
    assert newest.info.status == "KILLED" and children["trial-1"].info.status == "KILLED"
    assert "rockopt.error" not in newest.data.tags


def _wait_for(proc: subprocess.Popen, what: str, timeout: float = 240) -> str:
    """Read PROC's merged output until WHAT appears; what was read."""
    seen = ""
    deadline = time.time() + timeout
    while what not in seen and time.time() < deadline and proc.poll() is None:
        seen += proc.stdout.readline()
    assert what in seen, seen
    return seen


@pytest.mark.slow  # pytest -m slow
def test_sigterm_stops_a_search_as_ctrl_c_does_and_the_same_command_goes_on(study_file, workdir):
    """`timeout`, `docker stop` and a scheduler's preemption send SIGTERM: the trial is failed and
    queued again, every run ends, the process dies of SIGTERM, and the next search continues the
    trial after its last epoch; the same through the `--workers` launcher, which passes it on."""
    slow = _env({"ROCKOPT_TEST_SLOW": "1"})
    cmd = _cmd("search", "--study", study_file, "--n-trials", "1", "--set", "backbone=tests.custom_model:slow_when_asked")
    proc = subprocess.Popen(cmd, env=slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_for(proc, "trial 0 epoch 1/2")
    deadline = time.time() + 60
    while not list(workdir.glob("**/trial-0000/last.pt")) and time.time() < deadline:  # epoch 1 saved
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM, out
    assert "trial 0 is marked FAIL and queued again" in out and "Traceback" not in out
    trials = _study().trials
    assert [t.state.name for t in trials] == ["FAIL", "WAITING"] and trials[0].user_attrs["error"] == "interrupted"
    _, _, parents, children = _runs()
    assert [r.info.status for r in parents] == ["KILLED"] and children["trial-0"].info.status == "KILLED"
    assert children["trial-0"].data.tags["trial_state"] == "FAIL"

    again = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trial 1 retries trial 0, which was interrupted: continuing after its epoch 1" in again.stderr, again.stderr
    trials = _study().trials
    assert trials[1].state.name == "COMPLETE" and trials[1].params == trials[0].params

    launcher = subprocess.Popen(
        [*cmd[:-4], "--workers", "2", "--n-trials", "2", *cmd[-2:]], env=slow, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen = _wait_for(launcher, "epoch 1/2")
    launcher.send_signal(signal.SIGTERM)  # the launcher alone, as `kill PID` does
    out, _ = launcher.communicate(timeout=120)
    assert launcher.returncode == -signal.SIGTERM, seen + out
    trials = _study().trials
    assert not [t.number for t in trials if t.state.name == "RUNNING"]
    _, _, parents, children = _runs()
    assert not [r.info.run_name for r in [*parents, *children.values()] if r.info.status == "RUNNING"]
    stopped = [t for t in trials if t.user_attrs.get("error") == "interrupted"]
    assert len(stopped) >= 2 and all(any(w.system_attrs.get("retry_history", [])[-1:] == [t.number] for w in trials) for t in stopped)


# --- several processes on one study -------------------------------------------------------------


def test_two_searches_started_together_on_a_fresh_directory_both_finish_with_their_own_trials(study_file, workdir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{workdir / 'fresh' / 'mlflow.db'}")  # no tables yet: both race to make them
    doc = yaml.safe_load(study_file.read_text())
    doc["budget"]["max_epochs"] = 1
    study_file.write_text(yaml.safe_dump(doc))
    cmd = _cmd("search", "--study", study_file, "--n-trials", "3", "-q")
    procs = [subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
        assert "Traceback" not in err
    trials = _study().trials
    assert sorted(t.number for t in trials) == list(range(6))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 6  # no process repeats the other's draws
    _, _, parents, children = _runs()
    assert len(parents) == 2 and len(children) == 6
    assert {p.data.tags["rockopt.invocation"] for p in parents} == {"0", "1"}
    for t in trials:
        audit(children[f"trial-{t.number}"], {"epochs": 1}, t)


def test_a_dead_worker_s_trial_found_by_two_searches_at_once_is_queued_again_once(tmp_path):
    from rockopt.search.doctor import fail_and_queue_again

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    for _ in range(2):  # each search read it RUNNING; the second fails it after the first did
        fail_and_queue_again(study, [trial.number], "its worker died")
    assert [(t.state.name, t.user_attrs) for t in study.trials] == [("FAIL", {"error": "its worker died"}), ("WAITING", {})]


@pytest.mark.slow  # pytest -m slow
def test_a_worker_killed_by_a_signal_fails_the_launcher_by_name_and_leaves_nothing_running(study_file, workdir):
    doc = yaml.safe_load(study_file.read_text())
    doc["budget"]["max_epochs"] = 1
    study_file.write_text(yaml.safe_dump(doc))
    launcher = subprocess.Popen(
        _cmd("search", "--study", study_file, "--workers", "2", "--n-trials", "4", "--set", "backbone=tests.custom_model:slow_when_asked"),
        env=_env({"ROCKOPT_TEST_SLOW": "1"}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    storage = "journal:///studies/tiny.journal"
    victim = None
    deadline = time.time() + 240
    while victim is None and time.time() < deadline:
        time.sleep(0.5)
        if not Path("studies/tiny.journal").is_file():
            continue
        from rockopt.search.storage import open_storage

        try:
            trials = optuna.load_study(study_name="tiny", storage=open_storage(storage)).trials
        except KeyError:  # the study is not created yet
            continue
        for t in trials:
            if t.state.name == "RUNNING" and t.user_attrs.get("worker", "").endswith(":w1") and "mlflow_run_id" in t.user_attrs:
                victim = t
    assert victim is not None, "worker 1 never started a trial"
    pid = int(victim.user_attrs["worker"].split(":")[1])
    os.kill(pid, signal.SIGKILL)
    out, err = launcher.communicate(timeout=600)
    assert launcher.returncode == 128 + signal.SIGKILL, err[-3000:]
    assert f"worker 1 (pid {pid}) was killed by SIGKILL" in err
    from rockopt.search.storage import open_storage

    study = optuna.load_study(study_name="tiny", storage=open_storage(storage))
    killed = study.trials[victim.number]
    assert killed.state.name == "FAIL"
    assert any(t.state.name == "WAITING" and t.params == killed.params for t in study.trials)  # queued again
    client, _, parents, children = _runs()
    assert all(r.info.status != "RUNNING" for r in [*parents, *children.values()])
    assert children[f"trial-{victim.number}"].info.status == "KILLED"
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert done
    for t in done:
        audit(children[f"trial-{t.number}"], {"epochs": 1, "backbone": "tests.custom_model:slow_when_asked"}, t)
