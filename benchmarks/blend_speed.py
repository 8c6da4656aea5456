"""How long the blend weight fit takes at competition scale: 20 members x 380,020 rows x 7 classes.

Members are synthetic logits of varying quality (a few useless ones), with the Dacon class
shares. Prints the wall time of each fit on all rows, and of the full `blend` (every method,
in-sample and the 5-fold cross-validated estimate). Goal: the weight fit in 15 s or less.

    python benchmarks/blend_speed.py [--members 20] [--rows 380020] [--classes 7]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from rockopt.ensemble.methods import fit_greedy, fit_mean, fit_weights
from rockopt.ensemble.score import MacroF1
from rockopt.metrics import softmax

SHARES = np.array([0.04, 0.09, 0.12, 0.14, 0.17, 0.20, 0.24])


def members(m: int, n: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shares = SHARES[:c] / SHARES[:c].sum() if c <= len(SHARES) else np.full(c, 1 / c)
    y = rng.choice(c, size=n, p=shares)
    onehot = np.eye(c, dtype=np.float32)[y]
    probs = np.empty((m, n, c), dtype=np.float32)
    # members share most of their errors (same data, similar models): a common noise term
    common = rng.standard_normal((n, c), dtype=np.float32)
    for k in range(m):
        strength = 0.0 if k % 7 == 6 else rng.uniform(0.8, 1.6)  # every 7th member is noise
        own = rng.standard_normal((n, c), dtype=np.float32)
        probs[k] = softmax(strength * onehot + 0.8 * common + 0.6 * own)
    return probs, y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=20)
    ap.add_argument("--rows", type=int, default=380_020)
    ap.add_argument("--classes", type=int, default=7)
    ap.add_argument("--full", action="store_true", help="also time the 5-fold cross-validated estimate")
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs; numpy {np.__version__}")
    t = time.perf_counter()
    probs, y = members(a.members, a.rows, a.classes)
    print(f"generated {a.members} x {a.rows:,} x {a.classes} probabilities in {time.perf_counter() - t:.1f} s")
    score = MacroF1(y, a.classes)
    t = time.perf_counter()
    score.blended(probs[0], probs[1], 1.0)  # compiles (or loads from numba's cache)
    print(f"compiling the scorer: {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    for _ in range(20):
        score.blended(probs[0], probs[1], 0.5)
    print(f"one candidate blend scored (blend + argmax + confusion, fused): {(time.perf_counter() - t) / 20 * 1000:.1f} ms")
    best_single = max(score(p) for p in probs)
    for name, f in (("mean", fit_mean), ("greedy", fit_greedy)):
        t = time.perf_counter()
        b = f(probs, y)
        print(f"{name:8s} fit {time.perf_counter() - t:6.2f} s   OOF macro-F1 {score(b.scores(probs)):.4f}")
    t = time.perf_counter()
    g = fit_greedy(probs, y)
    w = fit_weights(probs, y, init=g)
    print(f"weights  fit {time.perf_counter() - t:6.2f} s   OOF macro-F1 {score(w.scores(probs)):.4f}  (greedy start included; goal <= 15 s)")
    t = time.perf_counter()
    wo = fit_weights(probs, y, init=g, offsets=True)
    print(f"weights+offsets fit {time.perf_counter() - t:6.2f} s (from the greedy start)   OOF macro-F1 {score(wo.scores(probs)):.4f}")
    print(f"best single member OOF macro-F1 {best_single:.4f}; weight on noise members: {w.weights[6::7].sum():.3f}")
    if a.full:
        from rockopt.ensemble.blend import _cross_validated

        fold = np.arange(a.rows) % 5
        for name in ("greedy", "weights"):
            t = time.perf_counter()
            cv = _cross_validated(name, probs, y, fold, score)
            print(f"{name:8s} 5-fold cross-validated estimate {time.perf_counter() - t:6.2f} s   macro-F1 {cv:.4f}")


if __name__ == "__main__":
    main()
