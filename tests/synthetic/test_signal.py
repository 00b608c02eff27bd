"""The synthetic signal is learnable but not trivial, realistic in range, and shared across datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.multiclass import OneVsRestClassifier

from landzoo import contract
from landzoo.synthetic import Generated, synthesize
from landzoo.synthetic.signatures import CLASS_KINDS, EUROSAT_RECIPES, KINDS, kind_signature


@pytest.fixture(scope="module")
def euro(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return synthesize("eurosat", tmp_path_factory.mktemp("eu"), 300, 21, workers=2, progress=False, keep_arrays=True)


@pytest.fixture(scope="module")
def ben(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return synthesize(
        "bigearthnet-v1", tmp_path_factory.mktemp("v1"), 300, 21, workers=2, progress=False, keep_arrays=True
    )


def _scaled(x: np.ndarray) -> np.ndarray:
    return (x - x.mean(0)) / (x.std(0) + 1e-9)


@pytest.mark.slow
def test_eurosat_mean_spectra_are_informative_but_not_enough(euro: Generated) -> None:
    x = _scaled(np.array([[p.arrays[b].mean() for b in contract.EUROSAT_BANDS] for p in euro.patches]))
    y = np.array([p.labels[0] for p in euro.patches])
    pred = cross_val_predict(
        LogisticRegression(max_iter=3000), x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0)
    )
    f1 = f1_score(y, pred, average="macro")
    counts = np.unique(y, return_counts=True)[1]
    best_constant = 2 * (counts.max() / len(y)) / (1 + counts.max() / len(y)) / len(counts)  # majority class only
    assert f1 > max(0.4, 5 * best_constant)
    assert f1 < 0.95  # textures and mixtures carry the rest; a per-image mean spectrum does not separate all


@pytest.mark.slow
def test_bigearthnet_patch_statistics_beat_the_best_constant(ben: Generated) -> None:
    bands = contract.S2_L2A_BANDS
    feats = []
    for p in ben.patches:
        a = [p.arrays[b].astype(np.float64) for b in bands]
        feats.append([f(x) for x in a for f in (np.mean, np.std, lambda v: np.percentile(v, 10))])
    x = _scaled(np.array(feats))
    y = np.array([contract.multi_hot(contract.ben43_to_ben19(p.labels), contract.BEN19) for p in ben.patches])
    y = y[:, y.sum(0) >= 12]
    pred = np.zeros_like(y)
    folds = np.arange(len(y)) % 5
    for k in range(5):
        model = OneVsRestClassifier(LogisticRegression(solver="liblinear", class_weight="balanced", C=0.5))
        model.fit(x[folds != k], y[folds != k])
        pred[folds == k] = model.predict(x[folds == k])
    f1 = f1_score(y, pred, average="macro", zero_division=0)
    share = y.mean(0)
    best_constant = float(np.mean(2 * share / (1 + share)))  # predicting every class everywhere
    assert f1 > best_constant + 0.12, (f1, best_constant)
    assert f1 < 0.9


@pytest.mark.slow
def test_bigearthnet_values_are_in_realistic_ranges(ben: Generated) -> None:
    means = {b: np.mean([p.arrays[b].mean() for p in ben.patches]) for b in contract.S2_L2A_BANDS}
    for band, (real_mean, _) in contract.BEN_BAND_STATS.items():
        if band in means:  # the real dataset's band means, within a factor 1.5
            assert real_mean / 1.5 < means[band] < real_mean * 1.5, (band, means[band], real_mean)
    water, veg = [], []
    for p in ben.patches:
        km, names = p.meta["kind_map"], p.meta["kind_names"]
        for i, kind in enumerate(names):
            mask = km == i
            if mask.sum() < 200:
                continue
            if kind in ("water_body", "sea"):
                water.append([p.arrays[b][mask].mean() for b in ("B02", "B03", "B04", "B08")])
            if kind in ("broadleaf_forest", "pasture", "arable", "coniferous_forest", "mixed_forest"):
                veg.append(p.arrays["B08"][mask].mean())
    water_m = np.mean(water, axis=0)
    assert water_m[:3].min() > 200 and water_m[:3].max() < 900 and water_m[3] < 400
    assert 2300 < np.mean(veg) < 4000


def _interior_means(truths: list, kind: str, bands: tuple[str, ...], native: bool) -> np.ndarray:
    """Mean of each band over pixels deep inside regions of ``kind`` (pure at 60 m too)."""
    from landzoo.synthetic.scene import box_blur

    sums, count = np.zeros(len(bands)), 0
    for p in truths:
        if kind not in p.meta["kind_names"]:
            continue
        mask = p.meta["kind_map"] == p.meta["kind_names"].index(kind)
        inner = box_blur(mask.astype(np.float32)[None], 11)[0] > 0.999
        if inner.sum() == 0:
            continue
        for j, b in enumerate(bands):
            arr = p.arrays[b].astype(np.float64)
            factor = mask.shape[0] // arr.shape[0] if native else 1
            sums[j] += arr.repeat(factor, 0).repeat(factor, 1)[inner].sum()
        count += int(inner.sum())
    assert count > 500, kind
    return sums / count


@pytest.mark.slow
def test_forest_looks_the_same_in_bigearthnet_and_eurosat(ben: Generated, euro: Generated) -> None:
    bands = ("B05", "B06", "B07", "B08", "B8A", "B11", "B12")  # bands with little L1C/L2A difference
    assert CLASS_KINDS["ben43"]["Coniferous forest"] in EUROSAT_RECIPES["Forest"].main
    forest = [k for k in EUROSAT_RECIPES["Forest"].main]
    ben_forest = np.mean([_interior_means(ben.patches, k, bands, True) for k in forest], axis=0)
    euro_forest = np.mean([_interior_means(euro.patches, k, bands, False) for k in forest], axis=0)
    rel = np.abs(ben_forest - euro_forest) / ben_forest
    assert rel.max() < 0.12, dict(zip(bands, rel.round(3), strict=True))
    euro_water = _interior_means(euro.patches, "water_body", bands, False)
    assert (np.abs(ben_forest - euro_water) / ben_forest).min() > 0.5  # the check can tell kinds apart
    # and both follow the one signature table
    table = np.mean([kind_signature(k, bands)[0] for k in ("broadleaf_forest", "coniferous_forest")], axis=0)
    assert np.all(np.abs(ben_forest - table) / table < 0.25)


def test_each_dataset_maps_its_classes_to_distinct_kinds() -> None:
    for name, mapping in CLASS_KINDS.items():
        kinds = [k for v in mapping.values() for k in (v if isinstance(v, tuple) else (v,))]
        assert len(kinds) == len(set(kinds)), name
        assert set(kinds) <= set(KINDS)
    assert set(CLASS_KINDS["ben43"]) == set(contract.BEN43)
    assert set(CLASS_KINDS["igbp17"]) == set(contract.IGBP17)
    shared = set(CLASS_KINDS["ben43"].values()) & set(CLASS_KINDS["igbp17"].values())
    assert {"coniferous_forest", "broadleaf_forest", "mixed_forest", "arable", "water_body"} <= shared


def test_any_band_set_has_a_signature() -> None:
    all_bands = contract.S2_L1C_BANDS
    for kind in KINDS:
        a, b = kind_signature(kind, all_bands)
        assert a.shape == (13,) and np.all(a > 0) and np.all(b > 0)
    veg = kind_signature("broadleaf_forest", ("B04", "B08"))[0]
    water = kind_signature("water_body", ("B04", "B08"))[0]
    assert veg[1] > 5 * veg[0] and water[1] < water[0]


def test_b10_is_cirrus_dark_in_l1c(tmp_path: Path) -> None:
    g = synthesize("eurosat", tmp_path, 10, 3, workers=1, progress=False, keep_arrays=True)
    b10 = np.mean([p.arrays["B10"].mean() for p in g.patches])
    b8a = np.mean([p.arrays["B8A"].mean() for p in g.patches])
    assert 1 <= b10 < 60 and b8a > 20 * b10  # real EuroSAT: B10 about 10 DN
