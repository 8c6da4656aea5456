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


def test_compile_wraps_the_model_and_checkpoints_keep_plain_keys(demo_data, tmp_path, monkeypatch):
    """`compile: true` trains through torch.compile's module; best.pt stays loadable without it.

    torch.compile itself takes a minute on the CPU, so a wrapper with the same key prefix
    (`_orig_mod.`) stands in for it here.
    """
    import torch

    from rockopt.train.checkpoints import load_checkpoint

    compiled = []

    class Compiled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

        def forward(self, x):
            compiled.append(x.shape[0])
            return self._orig_mod(x)

    monkeypatch.setattr(torch, "compile", Compiled)
    split = _split(demo_data, tmp_path)
    cfg = load_config(None, {**TINY, "compile": True, "gpu_flips": True})
    fit(cfg, split, out_dir=tmp_path / "run", progress=False)
    assert sum(compiled) >= len(split.train_paths) // TINY["batch_size"] * TINY["batch_size"] + len(split.val_paths)
    keys = load_checkpoint(tmp_path / "run" / "best.pt")["model"].keys()
    assert keys and not any(k.startswith("_orig_mod") for k in keys)
