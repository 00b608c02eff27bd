"""Every multi-label number of landzoo.metrics against scikit-learn (and the paper's own definitions)."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    fbeta_score,
    hamming_loss,
    jaccard_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from landzoo.contract import BEN19
from landzoo.metrics import (
    MULTILABEL_KEYS,
    MetricError,
    MultiLabelMetrics,
    best_constant_baseline,
    multilabel_metrics,
    tune_thresholds,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # torchmetrics/sklearn warn on undefined cases

C = 7
CLASSES = BEN19[:C]


def sklearn_reference(p: np.ndarray, y: np.ndarray, thr: np.ndarray | float = 0.5) -> dict:
    """The expected numbers, all from scikit-learn (zero_division=0) except where it has no equivalent."""
    yhat = (p >= thr).astype(int)
    ref: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for avg in ("micro", "macro", "weighted", "samples"):
            pr, rc, f1, _ = precision_recall_fscore_support(y, yhat, average=avg, zero_division=0)
            ref[f"precision_{avg}"], ref[f"recall_{avg}"], ref[f"f1_{avg}"] = pr, rc, f1
            ref[f"f2_{avg}"] = fbeta_score(y, yhat, beta=2, average=avg, zero_division=0)
        ref["paper_accuracy_micro"] = jaccard_score(y, yhat, average="micro", zero_division=0)
        ref["paper_accuracy_macro"] = jaccard_score(y, yhat, average="macro", zero_division=0)
        ref["jaccard_samples"] = jaccard_score(y, yhat, average="samples", zero_division=0)
        ref["hamming_loss"] = hamming_loss(y, yhat)
        ref["subset_accuracy"] = accuracy_score(y, yhat)
        pos = y.sum(0)
        ap = [average_precision_score(y[:, c], p[:, c]) if pos[c] > 0 else math.nan for c in range(y.shape[1])]
        both = (pos > 0) & (pos < len(y))
        auc = [roc_auc_score(y[:, c], p[:, c]) if both[c] else math.nan for c in range(y.shape[1])]
        ref["map_macro"] = float(np.nanmean(ap)) if pos.any() else math.nan
        ref["map_macro_classes"] = float((pos > 0).sum())
        ref["auroc_macro"] = float(np.nanmean(auc)) if both.any() else math.nan
        ref["auroc_macro_classes"] = float(both.sum())
        ref["map_micro"] = average_precision_score(y.ravel(), p.ravel()) if y.any() else math.nan
        ref["auroc_micro"] = roc_auc_score(y.ravel(), p.ravel()) if 0 < y.sum() < y.size else math.nan
        ref["num_samples"] = float(len(y))
        pr, rc, f1, sup = precision_recall_fscore_support(y, yhat, average=None, zero_division=0)
        f2 = fbeta_score(y, yhat, beta=2, average=None, zero_division=0)
        iou = jaccard_score(y, yhat, average=None, zero_division=0)
    ref["per_class"] = {
        name: {
            "support": float(sup[c]),
            "predicted": float(yhat[:, c].sum()),
            "precision": pr[c],
            "recall": rc[c],
            "f1": f1[c],
            "f2": f2[c],
            "iou": iou[c],
            "ap": ap[c],
            "auroc": auc[c],
        }
        for c, name in enumerate(CLASSES[: y.shape[1]])
    }
    return ref


def accumulate(p: np.ndarray, y: np.ndarray, sizes: list[int], **kw) -> dict:
    """Feed the metric in batches of uneven ``sizes`` (summing to len(p))."""
    assert sum(sizes) == len(p)
    m = MultiLabelMetrics(CLASSES[: p.shape[1]], **kw)
    start = 0
    for s in sizes:
        m.update(torch.from_numpy(p[start : start + s]), torch.from_numpy(y[start : start + s]))
        start += s
    return m.compute()


def _tol(key: str) -> float:
    # counts-based metrics are exact (float64); AP/AUROC come from torchmetrics' float32 curve sums
    return 1e-6 if key.startswith(("map", "auroc", "ap")) else 1e-12


def assert_matches(got: dict, ref: dict) -> None:
    for key in MULTILABEL_KEYS:
        assert got[key] == pytest.approx(ref[key], rel=0, abs=_tol(key), nan_ok=True), key
    for name, row in ref["per_class"].items():
        for k, v in row.items():
            assert got["per_class"][name][k] == pytest.approx(v, rel=0, abs=_tol(k), nan_ok=True), (name, k)


def random_case(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.1, 0.6, c)).astype(np.uint8)
    # informative scores (so the metrics are not all ~chance) with ties from rounding
    p = np.clip(0.35 * y + rng.random((n, c)) * 0.65, 0, 1)
    p = np.round(p, 2).astype(np.float32)
    return p, y


def edge_cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    cases = {}
    p, y = random_case(60, C, 1)
    y[:, 2] = 0  # a class never present
    cases["class_never_present"] = (p, y)
    p, y = random_case(60, C, 2)
    p[:, 3] = np.minimum(p[:, 3], 0.49)  # a class never predicted
    cases["class_never_predicted"] = (p, y)
    p, y = random_case(60, C, 3)
    cases["all_zero_predictions"] = ((p * 0.4).astype(np.float32), y)
    p, y = random_case(60, C, 4)
    y[:, 5] = 1  # a class present in every sample (AUROC undefined for it)
    y[7] = 0
    p[7] = 0.1  # a sample with no label and no prediction (samples-average 0/0)
    cases["always_present_and_empty_sample"] = (p, y)
    y = np.zeros((20, C), np.uint8)
    cases["no_positives_at_all"] = (random_case(20, C, 5)[0], y)
    return cases


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_inputs_uneven_batches_match_sklearn(seed: int) -> None:
    p, y = random_case(103, C, seed)
    got = accumulate(p, y, [1, 17, 40, 45])
    assert_matches(got, sklearn_reference(p, y))
    assert got["f1_micro"] > 0.3  # a real, non-degenerate case


@pytest.mark.parametrize("name", list(edge_cases()))
def test_edge_cases_match_sklearn(name: str) -> None:
    p, y = edge_cases()[name]
    got = accumulate(p, y, [13, 1, 46] if len(p) == 60 else [20])
    assert_matches(got, sklearn_reference(p, y))


def test_edge_case_conventions() -> None:
    cases = edge_cases()
    got = accumulate(*cases["class_never_present"], [60])
    row = got["per_class"][CLASSES[2]]
    assert math.isnan(row["ap"]) and math.isnan(row["auroc"]) and row["recall"] == 0 and row["f1"] == 0
    assert got["map_macro_classes"] == C - 1
    got = accumulate(*cases["all_zero_predictions"], [60])
    assert got["precision_micro"] == 0 and got["f1_macro"] == 0 and got["paper_accuracy_micro"] == 0
    got = accumulate(*cases["no_positives_at_all"], [20])
    assert math.isnan(got["map_macro"]) and math.isnan(got["auroc_macro"]) and got["map_macro_classes"] == 0


def test_single_sample() -> None:
    p = np.array([[0.9, 0.2, 0.5, 0.49, 0.7, 0.1, 0.6]], np.float32)
    y = np.array([[1, 0, 0, 1, 1, 0, 0]], np.uint8)
    got = accumulate(p, y, [1])
    assert_matches(got, sklearn_reference(p, y))
    assert got["num_samples"] == 1


def test_paper_definitions_directly() -> None:
    """The paper's section 5 formulas, written out independently of sklearn and of the module."""
    p, y = random_case(80, C, 7)
    got = accumulate(p, y, [30, 50])
    yhat = p >= 0.5
    yb = y.astype(bool)
    tp = (yhat & yb).sum(0)
    fp = (yhat & ~yb).sum(0)
    fn = (~yhat & yb).sum(0)
    union = (yhat | yb).sum(1)  # |y ∪ ŷ| per sample
    assert got["paper_accuracy_micro"] == pytest.approx(tp.sum() / union.sum())
    assert got["paper_accuracy_macro"] == pytest.approx(np.mean(tp / (tp + fp + fn)))
    prec = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0)
    rec = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0)
    assert got["f1_macro"] == pytest.approx(f1.mean())  # mean of per-class F1, not F1 of macro P and R
    pm, rm = tp.sum() / (tp.sum() + fp.sum()), tp.sum() / (tp.sum() + fn.sum())
    assert got["f1_micro"] == pytest.approx(2 * pm * rm / (pm + rm))
    assert got["f2_micro"] == pytest.approx(5 * pm * rm / (4 * pm + rm))


def test_threshold_is_greater_or_equal() -> None:
    p = np.array([[0.5, 0.4999]], np.float32)
    got = multilabel_metrics(p, np.array([[1, 1]]), CLASSES[:2])
    assert got["per_class"][CLASSES[0]]["tp"] == 1 and got["per_class"][CLASSES[1]]["tp"] == 0


def test_per_class_thresholds_match_sklearn() -> None:
    p, y = random_case(90, C, 11)
    thr = np.linspace(0.3, 0.7, C)
    got = accumulate(p, y, [45, 45], threshold=torch.from_numpy(thr))
    assert_matches(got, sklearn_reference(p, y, thr))
    assert [r["threshold"] for r in got["per_class"].values()] == pytest.approx(thr)


def test_tuned_thresholds_maximise_per_class_f1() -> None:
    p, y = random_case(120, C, 12)
    y[:, 6] = 0  # no positives: keeps the default
    thr = tune_thresholds(p, y).numpy()
    assert thr[6] == 0.5
    for c in range(C - 1):
        cands = [*np.unique(p[:, c]), np.inf]
        best = max(f1_score(y[:, c], p[:, c] >= t, zero_division=0) for t in cands)
        assert f1_score(y[:, c], p[:, c] >= thr[c], zero_division=0) == pytest.approx(best), c
        # the cut lies strictly between two observed scores (or at the lowest score)
        assert not np.any(p[:, c] == thr[c]) or thr[c] == p[:, c].min()
    # the metric's own helper (synchronised state) agrees, and applying the thresholds gives those F1s
    m = MultiLabelMetrics(CLASSES)
    m.update(torch.from_numpy(p[:50]), torch.from_numpy(y[:50]))
    m.update(torch.from_numpy(p[50:]), torch.from_numpy(y[50:]))
    assert m.tune_thresholds().numpy() == pytest.approx(thr)
    tuned = accumulate(p, y, [120], threshold=torch.from_numpy(thr))
    assert tuned["f1_macro"] >= accumulate(p, y, [120])["f1_macro"]


def test_from_logits_and_bad_inputs() -> None:
    p, y = random_case(30, C, 3)
    logits = np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4))).astype(np.float64)
    a = multilabel_metrics(torch.sigmoid(torch.from_numpy(logits)), y, CLASSES)
    b = multilabel_metrics(logits, y, CLASSES, from_logits=True)
    assert a["f1_macro"] == b["f1_macro"] and a["map_macro"] == pytest.approx(b["map_macro"])
    m = MultiLabelMetrics(CLASSES)
    with pytest.raises(MetricError, match="outside"):
        m.update(torch.from_numpy(logits), torch.from_numpy(y))
    with pytest.raises(MetricError, match=r"\[batch, 7\]"):
        m.update(torch.rand(4, 6), torch.zeros(4, 6))
    with pytest.raises(MetricError, match="0/1"):
        m.update(torch.rand(4, C), torch.full((4, C), 2))
    with pytest.raises(MetricError, match="thresholds"):
        MultiLabelMetrics(CLASSES, threshold=[0.5, 0.5])
    with pytest.raises(MetricError, match="repeat"):
        MultiLabelMetrics(["a", "a"])


def test_ranking_off_drops_only_ranking_keys() -> None:
    p, y = random_case(40, C, 9)
    full = multilabel_metrics(p, y, CLASSES)
    lean = multilabel_metrics(p, y, CLASSES, ranking=False)
    assert "map_macro" not in lean and lean["f1_macro"] == full["f1_macro"]
    assert set(full) - set(lean) == {
        "map_micro",
        "map_macro",
        "map_macro_classes",
        "auroc_micro",
        "auroc_macro",
        "auroc_macro_classes",
    }


def test_reset_and_per_class_keys_are_names() -> None:
    p, y = random_case(40, C, 9)
    m = MultiLabelMetrics(CLASSES)
    m.update(torch.from_numpy(p), torch.from_numpy(y))
    first = m.compute()
    first.pop("per_class")  # callers may pop; the next compute is unaffected
    m.reset()
    m.update(torch.from_numpy(p), torch.from_numpy(y))
    again = m.compute()
    assert list(again["per_class"]) == list(CLASSES)
    assert {k: v for k, v in again.items() if k != "per_class"} == pytest.approx(first, nan_ok=True)


def test_best_constant_baseline_is_the_best_constant() -> None:
    c = 6
    _, y = random_case(50, c, 21)
    y[:, 4] = 0
    base = best_constant_baseline(y, CLASSES[:c])
    best_micro, best_macro = 0.0, 0.0
    for bits in itertools.product([0, 1], repeat=c):  # every constant prediction
        yhat = np.tile(np.array(bits), (len(y), 1))
        best_micro = max(best_micro, f1_score(y, yhat, average="micro", zero_division=0))
        best_macro = max(best_macro, f1_score(y, yhat, average="macro", zero_division=0))
    assert base["f1_micro"] == pytest.approx(best_micro)
    assert base["f1_macro"] == pytest.approx(best_macro)
    yhat = np.tile([CLASSES[i] in base["f1_micro_classes"] for i in range(c)], (len(y), 1))
    assert f1_score(y, yhat, average="micro") == pytest.approx(best_micro)
    assert CLASSES[4] not in base["f1_macro_classes"]
    const = np.full(y.shape, 0.5)
    assert base["map_micro"] == pytest.approx(average_precision_score(y.ravel(), const.ravel()))
    ap = [average_precision_score(y[:, i], const[:, i]) for i in range(c) if y[:, i].any()]
    assert base["map_macro"] == pytest.approx(np.mean(ap))
    # and the metric module scores that constant prediction the same way
    got = multilabel_metrics(np.tile(np.where(yhat[0], 0.9, 0.1), (len(y), 1)), y, CLASSES[:c])
    assert got["f1_micro"] == pytest.approx(base["f1_micro"])


def test_no_samples() -> None:
    m = MultiLabelMetrics(CLASSES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = m.compute()
    assert got["f1_micro"] == 0 and got["hamming_loss"] == 0 and got["num_samples"] == 0
    assert math.isnan(got["map_macro"]) and math.isnan(got["auroc_micro"])


def test_checks_at_compute_give_the_same_numbers_and_raise_there() -> None:
    """``checks="compute"`` (the training engine's validation): the same metrics; bad values are counted on the
    device and raised by ``compute()`` with their number, not by ``update`` (which then never waits)."""
    p, y = random_case(60, C, 11)
    eager, deferred = MultiLabelMetrics(CLASSES), MultiLabelMetrics(CLASSES, checks="compute")
    for a, b in ((0, 25), (25, 60)):
        eager.update(torch.from_numpy(p[a:b]), torch.from_numpy(y[a:b]))
        deferred.update(torch.from_numpy(p[a:b]), torch.from_numpy(y[a:b]))
    want, got = eager.compute(), deferred.compute()
    assert got == want
    bad = MultiLabelMetrics(CLASSES, checks="compute")
    preds = torch.from_numpy(p[:4]).clone()
    preds[0, 0], preds[1, 2], preds[2, 1] = float("nan"), 1.5, -0.25
    bad.update(preds, torch.from_numpy(y[:4]))  # no error here
    with pytest.raises(MetricError, match=r"outside \[0, 1\] \(3 value\(s\) over the evaluated batches\)"):
        bad.compute()
    bad = MultiLabelMetrics(CLASSES, checks="compute")
    bad.update(torch.from_numpy(p[:4]), torch.full((4, C), 2))
    with pytest.raises(MetricError, match=rf"0/1 \(multi-hot\); got other values \({4 * C} value"):
        bad.compute()
    with pytest.raises(MetricError, match="checks must be"):
        MultiLabelMetrics(CLASSES, checks="later")
