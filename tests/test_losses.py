from __future__ import annotations

import numpy as np
import pytest
import torch

from rockopt.data.samplers import HardNegativeSampler, create_batch_sampler
from rockopt.data.samplers.schedule import RATIO_SCHEDULES, hnm_ratio_at
from rockopt.errors import ConfigError
from rockopt.train.losses import LOSSES, class_weights, make_loss, per_sample_loss

LOGITS = torch.tensor(
    [
        [4.0, 0.0, -1.0, 0.5],  # easy: confident and right
        [0.2, 0.1, 0.0, -0.1],  # unsure
        [3.0, -2.0, 0.0, 1.0],  # confident and wrong
    ]
)
Y = torch.tensor([0, 2, 1])
K = 4
LOGP = torch.log_softmax(LOGITS.double(), dim=1)  # the manual formulas below, in float64
ROWS = torch.arange(3)
CPU = torch.device("cpu")


def test_class_weights_inverse_frequency_with_an_absent_class():
    labels = np.array([0, 0, 0, 1])  # N = 4, K = 3; class 2 absent, counted as 1
    np.testing.assert_array_equal(class_weights(labels, 3, 0.0), [1.0, 1.0, 1.0])
    full = [4 / 9, 4 / 3, 4 / 3]
    np.testing.assert_allclose(class_weights(labels, 3, 1.0), full, rtol=1e-6)
    np.testing.assert_allclose(class_weights(labels, 3, 0.5), np.sqrt(full), rtol=1e-6)
    assert class_weights(labels, 3, 0.5).dtype == np.float32


def test_class_weights_refuses_a_label_beyond_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        class_weights(np.array([0, 3]), 3, 1.0)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_ce_is_the_smoothed_negative_log_softmax(eps):
    manual = -(1 - eps) * LOGP[ROWS, Y] - eps / K * LOGP.sum(1)
    got = per_sample_loss("ce", LOGITS, Y, label_smoothing=eps)
    assert got.shape == (3,) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), manual, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_weighted_ce_weights_the_target_and_each_smoothed_class(eps):
    w = torch.tensor([0.5, 2.0, 1.0, 3.0])
    wd = w.double()
    manual = -(1 - eps) * wd[Y] * LOGP[ROWS, Y] - eps / K * (wd * LOGP).sum(1)
    got = per_sample_loss("weighted_ce", LOGITS, Y, label_smoothing=eps, class_weight=w)
    torch.testing.assert_close(got.double(), manual, rtol=1e-5, atol=1e-6)


def test_weighted_ce_needs_class_weight():
    with pytest.raises(ValueError, match="class_weight"):
        per_sample_loss("weighted_ce", LOGITS, Y)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_focal_matches_the_formula(eps):
    gamma = 2.0
    q = torch.nn.functional.one_hot(Y, K).double() * (1 - eps) + eps / K
    manual = -(q * (1 - LOGP.exp()) ** gamma * LOGP).sum(1)
    got = per_sample_loss("focal", LOGITS, Y, label_smoothing=eps, focal_gamma=gamma)
    torch.testing.assert_close(got.double(), manual, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_focal_with_gamma_zero_is_ce(eps):
    torch.testing.assert_close(
        per_sample_loss("focal", LOGITS, Y, label_smoothing=eps, focal_gamma=0.0),
        per_sample_loss("ce", LOGITS, Y, label_smoothing=eps),
    )


def test_focal_down_weights_easy_samples_more_than_hard_ones():
    share = per_sample_loss("focal", LOGITS, Y, focal_gamma=2.0) / per_sample_loss("ce", LOGITS, Y)
    assert share[0] < 0.01  # easy: p_y ~ 0.95, (1 - p_y)^2 ~ 0.002
    assert share[2] > 0.9  # confidently wrong: p_y ~ 0.005
    assert share[0] < share[1] < share[2]


def test_losses_are_float32_from_half_logits():
    assert per_sample_loss("focal", LOGITS.bfloat16(), Y).dtype == torch.float32


def test_unknown_loss_names_the_choices():
    with pytest.raises(ConfigError, match="'hinge'.*focal"):
        per_sample_loss("hinge", LOGITS, Y)
    with pytest.raises(ConfigError, match="'hinge'"):
        make_loss("hinge", np.array([0]), K, label_smoothing=0.0, class_weight_power=1.0, focal_gamma=2.0, device=CPU)


@pytest.mark.parametrize("kind", LOSSES)
def test_make_loss_matches_per_sample_loss(kind):
    labels = np.array([0, 0, 0, 1, 2, 3, 3, 3])
    fn = make_loss(kind, labels, K, label_smoothing=0.1, class_weight_power=0.5, focal_gamma=1.5, device=CPU)
    w = torch.from_numpy(class_weights(labels, K, 0.5))
    expected = per_sample_loss(kind, LOGITS, Y, label_smoothing=0.1, class_weight=w, focal_gamma=1.5)
    torch.testing.assert_close(fn(LOGITS, Y), expected)


def test_weighted_ce_with_power_zero_is_ce():
    labels = np.array([0, 0, 0, 1])
    fn = make_loss("weighted_ce", labels, K, label_smoothing=0.1, class_weight_power=0.0, focal_gamma=2.0, device=CPU)
    torch.testing.assert_close(fn(LOGITS, Y), per_sample_loss("ce", LOGITS, Y, label_smoothing=0.1))


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("constant", [0.5, 0.5, 0.5, 0.5]),
        ("linear", [0.1, 0.1 + 0.4 / 3, 0.1 + 0.8 / 3, 0.5]),
        ("step", [0.1, 0.1, 0.5, 0.5]),
    ],
)
def test_hnm_ratio_schedules_per_epoch(schedule, expected):
    got = [hnm_ratio_at(e, 4, schedule, ratio=0.5, start=0.1, warmup_epochs=2) for e in range(1, 5)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("schedule", RATIO_SCHEDULES)
def test_hnm_ratio_of_a_single_epoch_run(schedule):
    expected = 0.1 if schedule == "step" else 0.5  # step: epoch 1 is inside the warmup
    assert hnm_ratio_at(1, 1, schedule, ratio=0.5, start=0.1, warmup_epochs=1) == pytest.approx(expected)


def test_hnm_ratio_unknown_schedule():
    with pytest.raises(ConfigError, match="'cosine'.*linear"):
        hnm_ratio_at(1, 4, "cosine", ratio=0.5, start=0.1, warmup_epochs=0)
    with pytest.raises(ConfigError, match="'hnm_ratio_schedule'.*'cosine'"):
        HardNegativeSampler(np.arange(8) % 2, 4, ratio_schedule="cosine")


def test_the_hnm_sampler_sets_each_epoch_s_ratio_from_its_schedule():
    from rockopt.config import load_config

    labels = np.repeat(np.arange(4), [70, 20, 6, 4])
    cfg = load_config(None, {"sampler_mode": "hnm", "epochs": 4, "hnm_ratio": 0.5, "hnm_ratio_schedule": "step", "hnm_ratio_start": 0.125, "hnm_ratio_warmup_epochs": 2})
    s = create_batch_sampler("hnm", labels, 16, **cfg.model_dump())  # the settings it declares, from a whole config
    assert (s.ratio, s.n_hard) == (0.125, 2)  # before the first epoch: epoch 1's
    got = []
    for epoch in range(1, 5):
        s.start_epoch(epoch)
        got.append((s.ratio, s.n_hard))
    assert got == [(0.125, 2), (0.125, 2), (0.5, 8), (0.5, 8)]
    # resumed at epoch 3 from a saved state: the schedule, not the state, gives the ratio
    resumed = create_batch_sampler("hnm", labels, 16, **cfg.model_dump())
    resumed.load_state_dict(s.state_dict())
    resumed.start_epoch(3)
    assert resumed.ratio == 0.5
    for mode in ("uniform", "balanced"):  # the other modes keep no pool
        assert create_batch_sampler(mode, labels, 16, **cfg.model_dump()).ratio is None


def test_set_ratio_changes_how_many_pool_samples_a_draw_takes():
    labels = np.repeat(np.arange(4), [70, 20, 6, 4])
    s = HardNegativeSampler(labels, 16, seed=0, memory=16, ratio=0.0)
    pool = np.arange(16)
    s.update(pool, np.full(16, 5.0))
    s.set_ratio(1.0)
    assert s.n_hard == 16
    np.testing.assert_array_equal(np.sort(s.draw()), pool)  # the whole batch is the pool
    s.set_ratio(0.5)
    assert (s.ratio, s.n_hard) == (0.5, 8)
    for _ in range(10):
        batch = s.draw()
        # 8 distinct pool samples, the balanced rest rarely in the pool (class 0 is drawn 1/4 of the time)
        assert 8 <= len(np.unique(batch[np.isin(batch, pool)])) < 16
    with pytest.raises(ValueError, match="hnm_ratio must be in"):
        s.set_ratio(1.5)
    assert s.n_hard == 8  # a refused ratio leaves the sampler as it was


# --- in the training loop ------------------------------------------------------------------------


def _split(root, tmp_path):
    from rockopt.data.folds import load_or_create_folds
    from rockopt.data.layout import scan_train
    from rockopt.data.split import make_split

    data = scan_train(root)
    return make_split(data, load_or_create_folds(data, tmp_path / "folds.csv", 5, 0), 0)


def test_the_loop_follows_the_ratio_schedule_and_reports_it_per_epoch(demo_data, tmp_path, monkeypatch):
    from rockopt.config import load_config
    from rockopt.train.engine import fit
    from tests.conftest import TINY

    drawn = []  # (ratio, pool samples per draw) as the sampler saw them
    original = HardNegativeSampler.draw

    def draw(self):
        drawn.append((self.ratio, self.n_hard))
        return original(self)

    monkeypatch.setattr(HardNegativeSampler, "draw", draw)
    cfg = load_config(None, {
        **TINY, "epochs": 3, "sampler_mode": "hnm", "hnm_memory": 8, "hnm_ratio": 0.5,
        "hnm_ratio_schedule": "linear", "hnm_ratio_start": 0.1,
    })  # fmt: skip
    res = fit(cfg, _split(demo_data, tmp_path), progress=False)
    assert [round(e.hnm_ratio, 6) for e in res.history] == [0.1, 0.3, 0.5]
    assert [round(e.metrics()["hnm_ratio"], 6) for e in res.history] == [0.1, 0.3, 0.5]
    steps = len(drawn) // 3
    assert {r for r, _ in drawn[:steps]} == {0.1} and {r for r, _ in drawn[-steps:]} == {0.5}
    assert drawn[0][1] == round(0.1 * cfg.batch_size) and drawn[-1][1] == round(0.5 * cfg.batch_size)
    uniform = fit(cfg.model_copy(update={"sampler_mode": "uniform", "epochs": 1}), _split(demo_data, tmp_path), progress=False)
    assert uniform.history[0].hnm_ratio is None and "hnm_ratio" not in uniform.history[0].metrics()


@pytest.mark.parametrize("loss", ["weighted_ce", "focal"])
def test_the_pool_ranks_by_plain_cross_entropy_whatever_the_training_loss(demo_data, tmp_path, monkeypatch, loss):
    import rockopt.train.engine as engine
    from rockopt.config import load_config
    from tests.conftest import TINY

    made = []

    def huge(*args, **kwargs):  # the configured loss, scaled far beyond any cross-entropy
        fn = make_loss(*args, **kwargs)
        made.append(args[0])
        return lambda logits, y: 1000.0 * fn(logits, y)

    seen = []
    original = HardNegativeSampler.update

    def update(self, indices, losses):
        seen.append(np.asarray(losses))
        original(self, indices, losses)

    monkeypatch.setattr(engine, "make_loss", huge)
    monkeypatch.setattr(HardNegativeSampler, "update", update)
    cfg = load_config(None, {**TINY, "epochs": 1, "sampler_mode": "hnm", "hnm_memory": 8, "loss": loss, "label_smoothing": 0.1})
    res = engine.fit(cfg, _split(demo_data, tmp_path), progress=False)
    assert made == [loss] and res.history[0].train_loss > 100  # the loop trained on the configured loss
    pooled = np.concatenate(seen)
    assert len(pooled) and 0 < pooled.max() < 20  # ...and the pool ranked by plain cross-entropy
