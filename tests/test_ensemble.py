"""Blending: refusals, what the methods do with a useless member, the honest estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rockopt.ensemble.blend import blend_members
from rockopt.ensemble.members import load_member, study_members
from rockopt.ensemble.methods import fit_greedy, fit_weights
from rockopt.ensemble.score import MacroF1
from rockopt.errors import RockoptError

N, C, K = 3000, 7, 5


def _labels(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.choice(C, size=N, p=[0.24, 0.2, 0.16, 0.14, 0.12, 0.1, 0.04])  # imbalanced like the target
    return y, np.arange(N) % K


def _write_member(path, logits, y, fold, *, fingerprint="f" * 16, ids=None, name=None):
    path.mkdir(parents=True)
    ids = np.asarray([f"train/c{c}/{i:05d}.jpg" for i, c in enumerate(y)]) if ids is None else ids
    np.savez(path / "oof.npz", ids=ids, labels=y, fold=fold, logits=logits.astype(np.float32))
    np.savez(path / "test.npz", ids=np.asarray(["T0", "T1"]), logits=logits[:2].astype(np.float32))
    meta = {"name": name or path.name, "classes": [f"c{i}" for i in range(C)], "folds_fingerprint": fingerprint}
    (path / "member.json").write_text(json.dumps(meta))
    return path


def _informative(y, strength, seed):
    rng = np.random.default_rng(seed)
    return strength * np.eye(C)[y] + rng.normal(0, 1, (N, C))


def test_members_with_other_folds_are_refused_by_name(tmp_path):
    y, fold = _labels()
    a = _write_member(tmp_path / "a", _informative(y, 2, 1), y, fold)
    b = _write_member(tmp_path / "b", _informative(y, 2, 2), y, fold, fingerprint="0" * 16)
    with pytest.raises(RockoptError, match=r"member .*/b used other folds"):
        blend_members([load_member(a), load_member(b)])


def test_members_with_another_sample_order_are_refused_by_name(tmp_path):
    y, fold = _labels()
    a = _write_member(tmp_path / "a", _informative(y, 2, 1), y, fold)
    ids = np.asarray([f"train/c{c}/{i:05d}.jpg" for i, c in enumerate(y)])
    order = np.random.default_rng(0).permutation(N)
    b = _write_member(tmp_path / "b", _informative(y, 2, 2)[order], y[order], fold, ids=ids[order])
    with pytest.raises(RockoptError, match=r"member .*/b has its OOF rows in another sample order"):
        blend_members([load_member(a), load_member(b)])


def _two_good_one_noise(tmp_path):
    y, fold = _labels()
    return [
        _write_member(tmp_path / "good", _informative(y, 1.6, 1), y, fold),
        _write_member(tmp_path / "also_good", _informative(y, 1.4, 2), y, fold),
        _write_member(tmp_path / "noise", np.random.default_rng(3).normal(0, 3, (N, C)), y, fold),
    ]


def test_a_noise_member_gets_no_weight_and_the_blend_beats_the_best_member_held_out(tmp_path):
    dirs = _two_good_one_noise(tmp_path)
    result = blend_members([load_member(d) for d in dirs], "greedy")
    rows = {r.name: r for r in result.rows}
    assert result.weights_by_method["greedy"].weights[2] <= 0.05
    assert result.weights_by_method["weights"].weights[2] <= 0.05
    best_member = max(rows["good"].cross_validated, rows["also_good"].cross_validated)
    assert rows["greedy"].cross_validated >= best_member
    assert rows["weights"].cross_validated >= best_member
    assert rows["mean"].in_sample < rows["greedy"].in_sample  # equal weights let the noise in
    assert result.test_probs.shape == (2, C) and np.allclose(result.test_probs.sum(1), 1, atol=1e-5)


def test_weights_search_never_loses_to_its_greedy_start():
    y, _ = _labels(1)
    probs = np.stack([np.exp(_informative(y, s, i)) for i, s in enumerate((1.5, 1.2, 0.8, 0.0))]).astype(np.float32)
    probs /= probs.sum(-1, keepdims=True)
    score = MacroF1(y, C)
    g = fit_greedy(probs, y)
    w = fit_weights(probs, y, init=g, offsets=True)
    assert score(w.scores(probs)) >= score(g.scores(probs))
    assert np.isclose(w.weights.sum(), 1) and (w.weights >= 0).all()


def test_macro_f1_scorer_matches_scikit_learn():
    from sklearn.metrics import f1_score

    y, _ = _labels()
    pred = np.random.default_rng(0).integers(0, C, N)
    assert MacroF1(y, C).from_pred(pred) == pytest.approx(f1_score(y, pred, labels=range(C), average="macro", zero_division=0))


def test_study_members_names_the_missing_trial_and_the_command(tmp_path):
    for trial in (3, 7):
        d = tmp_path / f"quick-trial-{trial}"
        d.mkdir()
        (d / "member.json").write_text(json.dumps({"study": "quick", "trial": trial}))
    assert study_members("quick", [7, 3], tmp_path) == [tmp_path / "quick-trial-7", tmp_path / "quick-trial-3"]
    with pytest.raises(RockoptError, match=r"no cv member for trial 5 of study 'quick'.*rockopt cv --config best/trial-0005/config.yaml"):
        study_members("quick", [3, 5], tmp_path)


def test_auto_uses_the_blend_that_does_best_out_of_sample(tmp_path):
    dirs = _two_good_one_noise(tmp_path)
    result = blend_members([load_member(d) for d in dirs], "auto")
    rows = {r.name: r for r in result.rows}
    assert result.method in ("mean", "greedy", "weights")
    assert rows[result.method].cross_validated == max(rows[m].cross_validated for m in ("mean", "greedy", "weights"))
    assert rows[result.method].cross_validated > rows["good"].cross_validated
    np.testing.assert_allclose(result.blend.weights, result.weights_by_method[result.method].weights)


def test_auto_falls_back_to_the_best_member_when_no_blend_beats_it_out_of_sample(tmp_path):
    y, fold = _labels()
    strong = _informative(y, 2.5, 1)
    dirs = [
        _write_member(tmp_path / "strong", strong, y, fold),
        _write_member(tmp_path / "noise", np.random.default_rng(3).normal(0, 3, (N, C)), y, fold),
        _write_member(tmp_path / "noise2", np.random.default_rng(4).normal(0, 3, (N, C)), y, fold),
    ]
    result = blend_members([load_member(d) for d in dirs], "auto")
    rows = {r.name: r for r in result.rows}
    assert max(rows[m].cross_validated for m in ("mean", "greedy", "weights")) <= rows["strong"].cross_validated
    assert result.method == "member:strong" and list(result.blend.weights) == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(result.oof_probs.argmax(1), strong.argmax(1))  # the member's own predictions


def test_blend_command_writes_the_submission_and_records_its_run(run_cli, tmp_path):
    from mlflow.tracking import MlflowClient

    y, fold = _labels()
    dirs = [
        _write_member(tmp_path / "a", _informative(y, 1.6, 1), y, fold, name="quick-trial-0+epochs=1"),  # '+' and '=': no MLflow metric name
        _write_member(tmp_path / "b", _informative(y, 1.4, 2), y, fold),
    ]
    data = tmp_path / "data"
    data.mkdir()
    (data / "sample_submission.csv").write_text("ID,rock_type\nT0,x\nT1,x\n")
    code, out, err = run_cli("blend", "--members", *dirs, "--method", "greedy", "--data", data, "--out", tmp_path / "blend")
    assert code == 0, err
    assert "greedy" in out and f"wrote {tmp_path / 'blend' / 'submission.csv'}" in out
    lines = (tmp_path / "blend" / "submission.csv").read_text().splitlines()
    assert lines[0] == "ID,rock_type" and [l.split(",")[0] for l in lines[1:]] == ["T0", "T1"]
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("rockopt-blend").experiment_id])
    assert run.info.run_name == "blend-greedy" and run.info.status == "FINISHED"
    assert run.data.params["used"] == "greedy" and run.data.params["members"] == "quick-trial-0+epochs=1,b"
    assert {"oof_f1.quick-trial-0_epochs_1", "cv_f1.b", "cv_f1.greedy"} <= set(run.data.metrics)
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"weights.json", "blend.npz", "submission.csv"}


def test_blend_without_a_data_set_for_the_submission_is_one_line_naming_data(run_cli, tmp_path):
    y, fold = _labels()
    dirs = [_write_member(tmp_path / n, _informative(y, 1.5, i), y, fold) for i, n in enumerate("ab")]
    code, _, err = run_cli("blend", "--members", *dirs, "--method", "mean", "--out", tmp_path / "blend")
    assert code == 2 and "Traceback" not in err, err
    (line,) = [l for l in err.splitlines() if l.startswith("error:")]
    assert "--data" in line and str(tmp_path / "a") in line
