"""Label fractions: reproducible, stratified subsets of a training split, nested across fractions by default.

How a subset is drawn (:func:`fraction_order`), for one seed:

1. **Coverage first.** Classes are visited from the rarest to the most frequent; for each class that no
   exemplar holds yet, one patch holding it is drawn at random. These exemplars open the order, so any
   subset of at least that many patches (at most one per class) contains every class of the split:
   "every class present where possible".
2. **Balanced prefixes.** The order goes on greedily: the next patch is drawn (at random among the patches
   of the chosen label set) from the label set that brings the class counts of the prefix closest, in
   squared error, to the split's class shares times the prefix length (with "no label" as one more class).
   This is the idea of iterative stratification (Sechidis et al. 2011) applied to an ordering, and works
   the same for single-label (one class per patch: exact proportional interleaving) and multi-label sets.
   On a skewed 10-class multi-label set the class prevalences of a 5 % subset deviate about 7 times less
   from the full split's than those of a random subset (see the tests).

A fraction ``f`` of ``N`` patches takes the first ``max(1, round(f * N))`` of the order (half up).
**Nested** (default): one order per seed, so the 1 % subset is inside the 5 % subset, and so on: a score
that rises with the fraction then reflects more labels, not a luckier draw. ``nested=False`` draws an
independent order per (seed, fraction). Seeds give independent orders; the same seed the same subset, on
any machine (NumPy's PCG64 seeded with the seed, a fixed salt and the stream: 0 for nested subsets, one per
fraction otherwise).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from landzoo.errors import LandzooError

__all__ = [
    "FractionError",
    "check_fraction",
    "fraction_order",
    "fraction_size",
    "parse_fractions",
    "sample_fraction",
]

_SALT = 0x5EED_F2AC


class FractionError(LandzooError, ValueError):
    """A label fraction outside (0, 1], or one that cannot be parsed."""


def check_fraction(value: float | str) -> float:
    """``value`` as a float in (0, 1], else :class:`FractionError`."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise FractionError(f"label fraction {value!r} is not a number; give fractions in (0, 1]") from None
    if not (0.0 < f <= 1.0) or math.isnan(f):
        raise FractionError(f"label fraction {value} is outside (0, 1]")
    return f


def parse_fractions(text: str | Iterable[float | str]) -> tuple[float, ...]:
    """``"0.01,0.05,1"`` (or a sequence) -> sorted unique fractions, each checked to lie in (0, 1]."""
    items = [s.strip() for s in text.split(",") if s.strip()] if isinstance(text, str) else list(text)
    if not items:
        raise FractionError("no label fractions given")
    return tuple(sorted({check_fraction(x) for x in items}))


def fraction_size(n: int, fraction: float) -> int:
    """Patches in a subset of ``fraction`` of ``n`` patches: ``round(fraction * n)`` half up, at least 1."""
    f = check_fraction(fraction)
    if n < 1:
        raise FractionError("cannot take a label fraction of an empty training split")
    return min(n, max(1, math.floor(f * n + 0.5)))


def _as_matrix(labels: np.ndarray | Sequence[int]) -> tuple[np.ndarray, bool]:
    """``[N, C]`` boolean label matrix and whether it is single-label."""
    arr = np.asarray(labels)
    if arr.ndim == 1:
        if arr.size and arr.min() < 0:
            raise FractionError("class indices must be non-negative")
        classes = int(arr.max()) + 1 if arr.size else 0
        mat = np.zeros((arr.size, classes), dtype=bool)
        mat[np.arange(arr.size), arr.astype(np.int64)] = True
        return mat, True
    if arr.ndim != 2:
        raise FractionError(f"labels must be class indices [N] or a multi-hot matrix [N, C], got shape {arr.shape}")
    mat = arr > 0.5
    return mat, bool((mat.sum(1) == 1).all())


def fraction_order(
    labels: np.ndarray | Sequence[int], seed: int, *, stream: int = 0, stop: int | None = None
) -> np.ndarray:
    """The seeded, stratified order of all patches (see the module docstring); subsets are its prefixes.

    ``stop``: balance only the first ``stop`` positions (the rest follows in random order), which is all
    that the largest fraction below 1 needs.
    """
    mat, _ = _as_matrix(labels)
    n, c = mat.shape
    rng = np.random.default_rng([int(seed), _SALT, int(stream)])
    counts = mat.sum(0)
    taken = np.zeros(n, dtype=bool)
    covered = np.zeros(c, dtype=bool)
    order: list[int] = []
    for k in np.lexsort((np.arange(c), counts)):  # rarest class first
        if counts[k] == 0 or covered[k]:
            continue
        pool = np.flatnonzero(mat[:, k] & ~taken)
        i = int(pool[rng.integers(len(pool))])
        order.append(i)
        taken[i] = True
        covered |= mat[i]
    # one column more for "no label", so unlabelled patches keep their share too
    ext = np.concatenate([mat, ~mat.any(1, keepdims=True)], axis=1).astype(np.float64)
    share = ext.mean(0)
    combos, inverse = np.unique(ext, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    members = [list(rng.permutation(np.flatnonzero((inverse == k) & ~taken))) for k in range(len(combos))]
    left = np.array([len(m) for m in members], dtype=np.int64)
    have = ext[order].sum(0) if order else np.zeros(ext.shape[1])
    stop = n if stop is None else min(n, int(stop))
    m = len(order)
    while m < stop and left.any():
        # adding a patch of label set y changes the squared deviation from the target counts by y . (1 - 2 d)
        deficit = (m + 1) * share - have
        score = np.where(left > 0, combos @ (1.0 - 2.0 * deficit), np.inf)
        best = np.flatnonzero(score <= score.min() + 1e-9)
        k = int(best[rng.integers(len(best))]) if len(best) > 1 else int(best[0])
        order.append(int(members[k].pop()))
        left[k] -= 1
        have += combos[k]
        m += 1
    rest = np.array([i for k in range(len(combos)) for i in members[k]], dtype=np.int64)
    return np.concatenate([np.asarray(order, dtype=np.int64), rng.permutation(rest)])


def sample_fraction(
    labels: np.ndarray | Sequence[int], fraction: float, seed: int, *, nested: bool = True
) -> np.ndarray:
    """Sorted indices of the patches of a label-fraction subset (stratified, reproducible by seed).

    ``labels`` are class indices ``[N]`` or a multi-hot matrix ``[N, C]`` of the training split.
    """
    f = check_fraction(fraction)
    mat, _ = _as_matrix(labels)
    size = fraction_size(len(mat), f)
    if size == len(mat):  # the whole split: nothing to draw (and no greedy balancing over N patches)
        return np.arange(len(mat))
    stream = 0 if nested else 1 + round(f * 1_000_000)
    return np.sort(fraction_order(mat, seed, stream=stream, stop=size)[:size])
