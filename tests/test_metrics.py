from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import f1_score

from rockopt.metrics import confusion, f1_per_class, macro_f1, softmax
from rockopt.train.confusion import confusion_matrix


def test_macro_f1_matches_scikit_learn_including_absent_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 7, 500))  # class 6 predicted, never true
    cm = confusion_matrix(torch.as_tensor(p), torch.as_tensor(y), 7).numpy()
    assert cm.sum() == 500
    np.testing.assert_array_equal(confusion(y, p, 7), cm)  # the host's count is the device's
    expected = f1_score(y, p, labels=range(7), average=None, zero_division=0)
    np.testing.assert_allclose(f1_per_class(cm), expected)
    assert abs(macro_f1(cm) - expected.mean()) < 1e-12


def test_softmax_rows_sum_to_one_and_keep_the_argmax():
    logits = np.random.default_rng(0).normal(0, 30, (50, 7)).astype(np.float32)
    p = softmax(logits.copy())
    np.testing.assert_allclose(p.sum(1), 1, rtol=1e-5)
    np.testing.assert_array_equal(p.argmax(1), logits.argmax(1))
    np.testing.assert_allclose(p, torch.softmax(torch.as_tensor(logits), 1).numpy(), rtol=1e-5, atol=1e-7)
