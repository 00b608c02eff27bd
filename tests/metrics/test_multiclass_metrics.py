"""Single-label (EuroSAT-style) metrics against scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from landzoo.contract import EUROSAT_CLASSES
from landzoo.metrics import MULTICLASS_KEYS, MetricError, MultiClassMetrics, majority_baseline

C = len(EUROSAT_CLASSES)


def reference(t: np.ndarray, p: np.ndarray) -> dict:
    out = {"accuracy": accuracy_score(t, p), "num_samples": float(len(t))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for avg in ("macro", "weighted"):
            pr, rc, f1, _ = precision_recall_fscore_support(t, p, labels=range(C), average=avg, zero_division=0)
            out |= {f"precision_{avg}": pr, f"recall_{avg}": rc, f"f1_{avg}": f1}
        pr, rc, f1, sup = precision_recall_fscore_support(t, p, labels=range(C), average=None, zero_division=0)
    out["per_class"] = {
        n: {
            "precision": pr[i],
            "recall": rc[i],
            "f1": f1[i],
            "support": float(sup[i]),
            "predicted": float((p == i).sum()),
        }
        for i, n in enumerate(EUROSAT_CLASSES)
    }
    return out


def check(got: dict, ref: dict) -> None:
    for k in MULTICLASS_KEYS:
        assert got[k] == pytest.approx(ref[k], rel=0, abs=1e-12), k
    for n, row in ref["per_class"].items():
        assert got["per_class"][n] == pytest.approx(row, rel=0, abs=1e-12), n


@pytest.mark.parametrize("seed", [0, 1])
def test_scores_uneven_batches_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, C, 157)
    scores = rng.random((157, C)).astype(np.float32)
    scores[np.arange(157), t] += rng.random(157) * 0.8  # better than chance
    m = MultiClassMetrics(EUROSAT_CLASSES)
    for lo, hi in ((0, 1), (1, 60), (60, 157)):
        m.update(torch.from_numpy(scores[lo:hi]), torch.from_numpy(t[lo:hi]))
    check(m.compute(), reference(t, scores.argmax(1)))
    assert np.array_equal(m.confmat.numpy(), confusion_matrix(t, scores.argmax(1), labels=range(C)))


def test_edge_cases_one_hot_target_and_index_preds() -> None:
    rng = np.random.default_rng(3)
    t = rng.integers(0, C - 1, 50)  # the last class never present
    p = rng.integers(0, C, 50)
    p[p == 2] = 3  # class 2 never predicted
    onehot = np.eye(C, dtype=np.uint8)[t]
    m = MultiClassMetrics(EUROSAT_CLASSES)
    m.update(torch.from_numpy(p), torch.from_numpy(onehot))
    got = m.compute()
    check(got, reference(t, p))
    assert got["per_class"][EUROSAT_CLASSES[-1]]["support"] == 0
    assert got["per_class"][EUROSAT_CLASSES[2]]["precision"] == 0
    # single sample
    m = MultiClassMetrics(EUROSAT_CLASSES)
    m.update(torch.tensor([4]), torch.tensor([4]))
    check(m.compute(), reference(np.array([4]), np.array([4])))


def test_bad_inputs() -> None:
    m = MultiClassMetrics(EUROSAT_CLASSES)
    with pytest.raises(MetricError, match="one-hot"):
        m.update(torch.rand(3, C), torch.ones(3, C, dtype=torch.uint8))
    with pytest.raises(MetricError, match=r"\[0, 10\)"):
        m.update(torch.tensor([0, 1]), torch.tensor([0, 10]))
    with pytest.raises(MetricError, match="differ in length"):
        m.update(torch.tensor([0, 1]), torch.tensor([0]))


def test_majority_baseline() -> None:
    t = np.array([1, 1, 1, 2, 3, 3])
    base = majority_baseline(t, EUROSAT_CLASSES)
    ref = reference(t, np.full_like(t, 1))
    assert base["class"] == EUROSAT_CLASSES[1]
    assert base["accuracy"] == pytest.approx(ref["accuracy"]) and base["f1_macro"] == pytest.approx(ref["f1_macro"])
    for c in range(C):  # no other constant does better
        assert reference(t, np.full_like(t, c))["f1_macro"] <= base["f1_macro"] + 1e-12


def test_checks_at_compute_give_the_same_numbers_and_raise_there() -> None:
    rng = np.random.default_rng(5)
    scores, target = torch.from_numpy(rng.random((50, C))), torch.from_numpy(rng.integers(0, C, 50))
    eager, deferred = MultiClassMetrics(EUROSAT_CLASSES), MultiClassMetrics(EUROSAT_CLASSES, checks="compute")
    eager.update(scores, target)
    deferred.update(scores, target)
    assert deferred.compute() == eager.compute()
    bad = MultiClassMetrics(EUROSAT_CLASSES, checks="compute")
    bad.update(torch.tensor([0, 1, 2]), torch.tensor([0, 10, -1]))  # no error here
    with pytest.raises(MetricError, match=r"indices in range \(2 value"):
        bad.compute()
    bad = MultiClassMetrics(EUROSAT_CLASSES, checks="compute")
    bad.update(torch.rand(3, C), torch.ones(3, C, dtype=torch.uint8))
    with pytest.raises(MetricError, match=r"one-hot .*\(3 value"):
        bad.compute()
