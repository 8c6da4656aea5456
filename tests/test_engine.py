from __future__ import annotations

import numpy as np

from rockopt.config import load_config
from rockopt.data.folds import load_or_create_folds
from rockopt.data.layout import scan_train
from rockopt.data.split import make_split
from rockopt.train.engine import fit
from tests.conftest import TINY


def _split(root, tmp_path):
    data = scan_train(root)
    return make_split(data, load_or_create_folds(data, tmp_path / "folds.csv", 5, 0), 0)


def test_same_seed_gives_identical_results(demo_data, tmp_path):
    split = _split(demo_data, tmp_path)
    cfg = load_config(None, {**TINY, "epochs": 2, "sampler_mode": "hnm", "hnm_memory": 8})
    a = fit(cfg, split, progress=False)
    b = fit(cfg, split, progress=False)
    np.testing.assert_array_equal(a.val_logits, b.val_logits)
    assert [e.train_loss for e in a.history] == [e.train_loss for e in b.history]
    c = fit(cfg.model_copy(update={"seed": 1}), split, progress=False)
    assert not np.array_equal(a.val_logits, c.val_logits)


def test_custom_model_factory_by_module_and_function(demo_data, tmp_path):
    split = _split(demo_data, tmp_path)
    cfg = load_config(None, {**TINY, "backbone": "tests.custom_model:tiny_cnn", "scheduler": "onecycle", "accumulation_steps": 2, "batch_size": 8})
    result = fit(cfg, split, out_dir=tmp_path / "run", progress=False)
    assert result.val_logits.shape == (len(split.val_ids), 6)
    assert (tmp_path / "run" / "best.pt").is_file()


def test_on_epoch_can_stop_a_run(demo_data, tmp_path):
    class Stop(Exception):
        pass

    seen = []

    def stop_after_first(res):
        seen.append(res.epoch)
        raise Stop

    split = _split(demo_data, tmp_path)
    cfg = load_config(None, {**TINY, "epochs": 3})
    try:
        fit(cfg, split, on_epoch=stop_after_first, progress=False)
    except Stop:
        pass
    assert seen == [1]
