"""The hard-negative pool, maintained incrementally: per-step cost O(B log N), not O(N).

The pool is the `capacity` samples with the highest last loss. Rebuilding it from all N
remembered losses every step (a partition over N) costs milliseconds at Dacon size (N =
380,020), in series with every GPU step. Here three segment trees keep it up to date from
each step's B updates:

- a max-tree over the N samples outside the pool (unseen ones at -inf): the best candidate;
- a min-tree over the pool's slots (empty slots at -inf): the first to leave;
- a sum-tree over the pool's slots (weight = loss + 1e-12): drawing in proportion to loss.

After each point update at most one swap restores "every pool loss >= every outside loss".
Drawing k without replacement walks the sum-tree k times, zeroing each pick until the draw
is done: successive sampling, the same distribution as numpy's `choice(replace=False, p=...)`
over the pool. Written by hand, compiled with numba: no well-kept library maintains a top-K
under point updates with weighted sampling.
"""

from __future__ import annotations

import numba
import numpy as np

EPS = 1e-12  # weight of a zero loss: still drawable, as with numpy's p = (loss + 1e-12) / sum


def _pow2(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


MAX, MIN, SUM = 0, 1, 2  # what a tree's inner node holds of its two children


@numba.njit(cache=True, nogil=True)
def _set(tree, size, i, v, op):  # pragma: no cover - compiled
    """Leaf I of TREE becomes V; the nodes above it are recomputed with OP."""
    node = size + i
    tree[node] = v
    node //= 2
    while node >= 1:
        a, b = tree[2 * node], tree[2 * node + 1]
        if op == SUM:
            tree[node] = a + b
        elif op == MAX:
            tree[node] = a if a >= b else b
        else:
            tree[node] = a if a <= b else b
        node //= 2


@numba.njit(cache=True, nogil=True)
def _root_leaf(tree, size):  # pragma: no cover - compiled
    """The leaf holding a max- or min-tree's root value (the left one on a tie)."""
    node = 1
    while node < size:
        node = 2 * node if tree[2 * node] == tree[node] else 2 * node + 1
    return node - size


@numba.njit(cache=True, nogil=True)
def _update(last, outside, n_size, low, total, k_size, slot_item, slot_of, count, indices, losses):  # pragma: no cover
    for t in range(indices.shape[0]):
        i = indices[t]
        v = np.float64(losses[t])
        last[i] = losses[t]
        s = slot_of[i]
        if s >= 0:
            _set(low, k_size, s, v, MIN)
            _set(total, k_size, s, v + EPS, SUM)
        else:
            _set(outside, n_size, i, v, MAX)
        # restore the invariant: one swap at most after a single change
        while outside[1] > low[1]:
            j = _root_leaf(outside, n_size)
            vj = outside[1]
            s = _root_leaf(low, k_size)
            old = slot_item[s]
            slot_item[s] = j
            slot_of[j] = s
            _set(outside, n_size, j, -np.inf, MAX)
            _set(low, k_size, s, vj, MIN)
            _set(total, k_size, s, vj + EPS, SUM)
            if old >= 0:
                slot_of[old] = -1
                _set(outside, n_size, old, np.float64(last[old]), MAX)
            else:
                count[0] += 1


@numba.njit(cache=True, nogil=True)
def _draw(total, k_size, slot_item, u, out):  # pragma: no cover - compiled
    k = u.shape[0]
    picked = np.empty(k, np.int64)
    saved = np.empty(k, np.float64)
    n = 0
    for t in range(k):
        mass = total[1]
        if mass <= 0.0:
            break
        target = u[t] * mass
        node = 1
        while node < k_size:
            left = total[2 * node]
            if target < left or total[2 * node + 1] <= 0.0:
                node = 2 * node
            else:
                target -= left
                node = 2 * node + 1
        s = node - k_size
        out[n] = slot_item[s]
        picked[n] = s
        saved[n] = total[node]
        _set(total, k_size, s, 0.0, SUM)
        n += 1
    for t in range(n):  # put the picks back for the next draw
        _set(total, k_size, picked[t], saved[t], SUM)
    return n


def _build(leaves: np.ndarray, size: int, fill: float, reduce) -> np.ndarray:
    """A segment tree (root at 1, leaves at size..2*size) over LEAVES, built level by level."""
    tree = np.full(2 * size, fill, dtype=np.float64)
    tree[size : size + len(leaves)] = leaves
    lo = size
    while lo > 1:
        tree[lo // 2 : lo] = reduce(tree[lo : 2 * lo].reshape(-1, 2), axis=1)
        lo //= 2
    return tree


class HardPool:
    """The `capacity` samples of N with the highest last loss (NaN: never seen)."""

    def __init__(self, n: int, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, but got capacity={capacity}")
        self.n, self.capacity = n, min(capacity, n)
        self.n_size, self.k_size = _pow2(n), _pow2(self.capacity)
        self.rebuild(np.full(n, np.nan, dtype=np.float32))

    def rebuild(self, last_loss: np.ndarray, slots: np.ndarray | None = None) -> None:
        """Start from remembered losses (a checkpoint's), in O(N). SLOTS, the pool's layout as
        `state()` gave it, makes the next draws the same as the saved pool's would have been."""
        self.last = np.asarray(last_loss, dtype=np.float32).copy()
        if slots is None:
            seen = np.flatnonzero(~np.isnan(self.last))
            if len(seen) > self.capacity:
                seen = seen[np.argpartition(self.last[seen], -self.capacity)[-self.capacity :]]
            slots = np.full(self.k_size, -1, dtype=np.int64)
            slots[: len(seen)] = seen
        self.slot_item = np.asarray(slots, dtype=np.int64).copy()
        occupied = np.flatnonzero(self.slot_item >= 0)
        seen = self.slot_item[occupied]
        self.slot_of = np.full(self.n, -1, dtype=np.int64)
        self.slot_of[seen] = occupied
        self.count = np.array([len(seen)], dtype=np.int64)
        slot_loss = np.full(self.k_size, -np.inf)
        slot_loss[occupied] = self.last[seen]
        # slots beyond the capacity never take a sample: +inf keeps them out of the min-tree's way
        slot_loss[self.capacity :] = np.inf
        weights = np.where(np.isfinite(slot_loss), slot_loss + EPS, 0.0)
        outside = np.where(np.isnan(self.last), -np.inf, self.last).astype(np.float64)
        outside[seen] = -np.inf
        self.outside = _build(outside, self.n_size, -np.inf, np.max)
        self.low = _build(slot_loss, self.k_size, np.inf, np.min)
        self.total = _build(weights, self.k_size, 0.0, np.sum)

    def state(self) -> np.ndarray:
        return self.slot_item.copy()

    def __len__(self) -> int:
        return int(self.count[0])

    def update(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Each sample's latest loss; in order, so a sample met twice keeps its last."""
        _update(
            self.last, self.outside, self.n_size, self.low, self.total, self.k_size, self.slot_item, self.slot_of, self.count,
            np.ascontiguousarray(indices, dtype=np.int64), np.ascontiguousarray(losses, dtype=np.float32),
        )  # fmt: skip

    def draw(self, k: int, rng: np.random.Generator) -> np.ndarray:
        """K pool samples, in proportion to loss + 1e-12, without replacement."""
        k = min(k, len(self))
        out = np.empty(k, dtype=np.int64)
        n = _draw(self.total, self.k_size, self.slot_item, rng.random(k), out)
        return out[:n]

    def members(self) -> np.ndarray:
        """The pool's samples, highest loss first."""
        items = self.slot_item[self.slot_item >= 0]
        return items[np.argsort(-self.last[items], kind="stable")]
