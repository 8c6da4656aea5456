from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import f1_score

from rockopt.train.metrics import confusion_matrix, f1_per_class, macro_f1


def test_macro_f1_matches_scikit_learn_including_absent_classes():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 500)
    p = np.where(rng.random(500) < 0.6, y, rng.integers(0, 7, 500))  # class 6 predicted, never true
    cm = confusion_matrix(torch.as_tensor(p), torch.as_tensor(y), 7)
    assert cm.sum() == 500
    expected = f1_score(y, p, labels=range(7), average=None, zero_division=0)
    np.testing.assert_allclose(f1_per_class(cm), expected)
    assert abs(macro_f1(cm) - expected.mean()) < 1e-12
