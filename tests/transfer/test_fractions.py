"""Label fractions: reproducible by seed, nested by default, stratified, every class present where possible."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from landzoo.transfer.fractions import (
    FractionError,
    check_fraction,
    fraction_size,
    parse_fractions,
    sample_fraction,
)


def _single(seed: int = 0) -> np.ndarray:
    """Imbalanced single-label set: 10 classes with 500, 300, ..., 3 patches."""
    counts = [500, 300, 200, 120, 80, 40, 20, 10, 5, 3]
    y = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    return np.random.default_rng(seed).permutation(y)


def _multi(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Multi-label set with class frequencies from 40 % down to 0.3 % and co-occurrence."""
    rng = np.random.default_rng(seed)
    p = np.array([0.4, 0.3, 0.25, 0.15, 0.1, 0.06, 0.03, 0.015, 0.008, 0.003])
    y = (rng.random((n, len(p))) < p).astype(np.uint8)
    return y


def test_reproducible_by_seed_and_different_across_seeds() -> None:
    y = _single()
    a = sample_fraction(y, 0.05, seed=3)
    b = sample_fraction(y, 0.05, seed=3)
    c = sample_fraction(y, 0.05, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(a) == fraction_size(len(y), 0.05) == round(0.05 * len(y))


def test_nested_by_default_and_independent_on_request() -> None:
    y = _multi()
    fractions = (0.01, 0.05, 0.1, 0.5, 1.0)
    subsets = [set(sample_fraction(y, f, seed=1).tolist()) for f in fractions]
    for small, large in itertools.pairwise(subsets):
        assert small < large
    assert subsets[-1] == set(range(len(y)))
    a = set(sample_fraction(y, 0.05, seed=1, nested=False).tolist())
    b = set(sample_fraction(y, 0.1, seed=1, nested=False).tolist())
    assert not a <= b  # independent draws: the small one is (almost surely) not inside the large one


def test_single_label_is_stratified_and_covers_every_class() -> None:
    y = _single()
    counts = np.bincount(y)
    for f in (0.02, 0.05, 0.1, 0.5):
        idx = sample_fraction(y, f, seed=0)
        got = np.bincount(y[idx], minlength=len(counts))
        assert (got >= 1).all(), f  # 26 patches or more: every one of the 10 classes is in
        # every class within one patch of its proportional share (the exemplars included)
        assert np.abs(got - f * counts).max() <= 1.0 + 1e-9, (f, got, f * counts)


def test_every_class_present_as_soon_as_the_subset_can_hold_them() -> None:
    y = _multi()
    present = y.sum(0) > 0
    for seed in range(5):
        idx = sample_fraction(y, 10 / len(y), seed=seed)  # 10 patches, 10 classes
        assert (y[idx].sum(0)[present] > 0).all()


def test_multi_label_stratification_beats_random_sampling() -> None:
    """Mean absolute deviation of class prevalence from the full set: stratified vs plain random subsets."""
    y = _multi()
    prevalence = y.mean(0)
    f = 0.05
    strat, rand = [], []
    for seed in range(20):
        idx = sample_fraction(y, f, seed=seed)
        strat.append(np.abs(y[idx].mean(0) - prevalence).mean())
        ridx = np.random.default_rng(seed).choice(len(y), size=len(idx), replace=False)
        rand.append(np.abs(y[ridx].mean(0) - prevalence).mean())
    assert np.mean(strat) < 0.25 * np.mean(rand), (np.mean(strat), np.mean(rand))


@pytest.mark.parametrize("bad", [0, 0.0, -0.1, 1.01, 2, float("nan"), "x"])
def test_fraction_outside_the_unit_interval_is_refused(bad: object) -> None:
    with pytest.raises(FractionError):
        check_fraction(bad)  # type: ignore[arg-type]
    with pytest.raises(FractionError):
        sample_fraction(_single(), bad, seed=0)  # type: ignore[arg-type]


def test_parse_fractions() -> None:
    assert parse_fractions("0.1, 0.01,1,0.1") == (0.01, 0.1, 1.0)
    with pytest.raises(FractionError, match="outside"):
        parse_fractions("0.01,1.5")
    with pytest.raises(FractionError, match="no label fractions"):
        parse_fractions(" , ")
    assert fraction_size(7, 0.01) == 1  # never an empty subset
    assert fraction_size(10, 0.25) == 3  # half up
