"""Classification metrics, defined once, accumulated over the whole evaluated set and exact under DDP.

Why this module exists: the reference code averaged *shard-level* metrics over Horovod workers, and
other anchors log rank-local or batch-averaged numbers. Here every metric is a function of state that
is **summed** (per-class confusion counts, per-sample sums) or **concatenated** (scores and targets for
average precision and AUROC) over batches and ranks, so the result is the metric of the whole set, the
same for 1 or N processes. torchmetrics' :class:`~torchmetrics.Metric` provides the state handling:
``dist_reduce_fx="sum"`` / ``"cat"``, synchronisation in ``compute()``, ``merge_state``, ``reset``.

* :class:`MultiLabelMetrics`: multi-label (sigmoid) outputs; ``compute()`` returns a flat dict of floats
  with stable names (``f1_micro``, ``f2_samples``, ``map_macro``, ``paper_accuracy_micro``, ...) plus
  ``"per_class"``: rows keyed by class name. Definitions and edge cases: ``docs/metrics.md``.
* :class:`MultiClassMetrics`: single-label (softmax / argmax) outputs, e.g. EuroSAT.
* :func:`tune_thresholds`: per-class thresholds that maximise each class's F1 (tune on validation,
  apply to test by passing them as ``threshold``).
* :func:`best_constant_baseline` / :func:`majority_baseline`: what a model that ignores its input
  scores, from the labels alone, to print beside the models in a leaderboard.

Conventions (the same as scikit-learn with ``zero_division=0``): a ratio whose denominator is 0 is 0.
A prediction is positive when ``score >= threshold`` (the paper's rule; torchmetrics uses ``>``).
Average precision is undefined for a class with no positive sample and AUROC for a class with no
positive or no negative sample: such a class gets NaN in the per-class table and is left out of the
macro average (scikit-learn would count AP as 0 and raise for AUROC); ``map_macro_classes`` and
``auroc_macro_classes`` say how many classes were averaged. With no class defined the average is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_average_precision,
)

from landzoo.errors import LandzooError

__all__ = [
    "MULTICLASS_KEYS",
    "MULTILABEL_KEYS",
    "MetricError",
    "MultiClassMetrics",
    "MultiLabelMetrics",
    "MultilabelMetrics",
    "best_constant_baseline",
    "majority_baseline",
    "multilabel_metrics",
    "tune_thresholds",
]


class MetricError(LandzooError, ValueError):
    """Inputs a metric cannot take: wrong shape, non-binary targets, logits where probabilities are expected."""


_AVERAGES = ("micro", "macro", "weighted", "samples")
_PRF = ("precision", "recall", "f1", "f2")

#: Scalar keys of :meth:`MultiLabelMetrics.compute` (ranking keys only with ``ranking=True``).
MULTILABEL_KEYS: tuple[str, ...] = (
    *(f"{m}_{a}" for m in _PRF for a in _AVERAGES),
    "paper_accuracy_micro",
    "paper_accuracy_macro",
    "jaccard_samples",
    "hamming_loss",
    "subset_accuracy",
    "map_micro",
    "map_macro",
    "map_macro_classes",
    "auroc_micro",
    "auroc_macro",
    "auroc_macro_classes",
    "num_samples",
)
_RANKING_KEYS = ("map_micro", "map_macro", "map_macro_classes", "auroc_micro", "auroc_macro", "auroc_macro_classes")

#: Scalar keys of :meth:`MultiClassMetrics.compute`.
MULTICLASS_KEYS: tuple[str, ...] = (
    "accuracy",
    *(f"{m}_{a}" for m in ("precision", "recall", "f1") for a in ("macro", "weighted")),
    "num_samples",
)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------


def _div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` elementwise in float64, 0 where ``den == 0`` (scikit-learn's ``zero_division=0``)."""
    num = num.double()
    den = den.double()
    return torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(num))


def _fbeta(tp: Tensor, fp: Tensor, fn: Tensor, beta: float) -> Tensor:
    """F-beta from counts: ``(1+b²)tp / ((1+b²)tp + b²fn + fp)``; equal to the P/R form whenever that is defined."""
    b2 = beta * beta
    tp, fp, fn = tp.double(), fp.double(), fn.double()
    return _div((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)


def _classes(classes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(classes)
    if not names or isinstance(classes, str):
        raise MetricError("a metric needs the class names (a non-empty sequence, e.g. landzoo.contract.BEN19)")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise MetricError(f"class names repeat: {', '.join(dup)}")
    return names


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))


def _checks_mode(checks: str) -> str:
    if checks not in ("update", "compute"):
        raise MetricError(f"checks must be 'update' or 'compute', not {checks!r}")
    return checks


def _raise_deferred(metric: Metric, preds_msg: str, target_msg: str) -> None:
    """``checks="compute"``: the bad values counted on the device by ``update`` (all ranks, already synchronised)."""
    for count, msg in ((metric.bad_preds, preds_msg), (metric.bad_target, target_msg)):
        n = int(count)
        if n:
            raise MetricError(f"{msg} ({n} value(s) over the evaluated batches)")


def _check_binary(target: Tensor, what: str) -> Tensor:
    if target.dtype.is_floating_point:
        if not torch.all((target == 0) | (target == 1)):
            raise MetricError(f"{what} must be 0/1 (multi-hot); got other values")
    elif target.dtype != torch.bool and target.numel() and (int(target.min()) < 0 or int(target.max()) > 1):
        raise MetricError(f"{what} must be 0/1 (multi-hot); got values in [{int(target.min())}, {int(target.max())}]")
    return target.bool()


def _threshold_tensor(threshold: float | Sequence[float] | Tensor, num_classes: int) -> Tensor:
    t = torch.as_tensor(threshold, dtype=torch.float64).flatten()
    if t.numel() == 1:
        t = t.expand(num_classes).clone()
    if t.numel() != num_classes:
        raise MetricError(f"got {t.numel()} per-class thresholds for {num_classes} classes")
    if not torch.all(torch.isfinite(t)):
        raise MetricError("thresholds must be finite")
    return t


# --------------------------------------------------------------------------------------------------
# multi-label
# --------------------------------------------------------------------------------------------------


class MultiLabelMetrics(Metric):
    """Multi-label metrics over the whole evaluated set (see the module docstring and docs/metrics.md).

    ``update(preds, target)``: ``preds`` ``[B, C]`` probabilities in [0, 1] (or logits with
    ``from_logits=True``; a probability outside [0, 1] is an error, never silently passed through a
    sigmoid), ``target`` ``[B, C]`` multi-hot. ``threshold``: one value or one per class (e.g. from
    :func:`tune_thresholds`). ``ranking=False`` drops AP/AUROC and with them the only state that grows
    with the number of samples (two ``[N, C]`` tensors; the rest is O(C)).

    ``compute()`` returns ``{key: float for key in MULTILABEL_KEYS} | {"per_class": {name: row}}``; a row
    holds threshold, support, predicted, tp, fp, fn, tn, precision, recall, f1, f2, iou, ap, auroc.
    ``checks``: ``"update"`` (default) checks the values of every batch as it is added (a bad value raises
    there, naming it); ``"compute"`` counts bad values on the device and raises in ``compute()`` instead, so
    that ``update`` never waits for the device (the training engine's validation uses this).
    Under DDP the state is synchronised inside ``compute()``, so every rank gets the global result; the
    evaluation sampler must give each sample to exactly one rank (a padding ``DistributedSampler``
    counts the padded duplicates).
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor
    n_samples: Tensor
    n_exact: Tensor
    sample_sums: Tensor

    # order of the per-sample sums in ``sample_sums``
    _SAMPLE_SUMS = ("precision", "recall", "f1", "f2", "jaccard")

    def __init__(
        self,
        classes: Sequence[str],
        *,
        threshold: float | Sequence[float] | Tensor = 0.5,
        from_logits: bool = False,
        ranking: bool = True,
        checks: str = "update",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("compute_with_cache", False)  # callers may pop "per_class" from the result
        super().__init__(**kwargs)
        self.classes = _classes(classes)
        self.num_classes = len(self.classes)
        self.checks = _checks_mode(checks)
        self.add_state("bad_preds", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("bad_target", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.from_logits = bool(from_logits)
        self.ranking = bool(ranking)
        self.register_buffer("threshold", _threshold_tensor(threshold, self.num_classes), persistent=False)
        c = self.num_classes
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.zeros(c, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_samples", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_exact", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state(
            "sample_sums", default=torch.zeros(len(self._SAMPLE_SUMS), dtype=torch.float64), dist_reduce_fx="sum"
        )
        if self.ranking:
            self.add_state("scores", default=[], dist_reduce_fx="cat")
            self.add_state("targets", default=[], dist_reduce_fx="cat")

    # ---- update ------------------------------------------------------------------------------
    def _probs(self, preds: Tensor) -> Tensor:
        preds = _as_tensor(preds)
        if preds.ndim != 2 or preds.shape[1] != self.num_classes:
            raise MetricError(f"preds must be [batch, {self.num_classes}], got {tuple(preds.shape)}")
        if not preds.dtype.is_floating_point:
            raise MetricError(f"preds must be float scores, got {preds.dtype}")
        preds = preds.detach()
        if self.checks == "compute":
            bad = ~torch.isfinite(preds)
            if not self.from_logits:
                bad |= (preds < 0) | (preds > 1)
            self.bad_preds += bad.sum().to(self.bad_preds.device)
            return torch.sigmoid(preds.float()) if self.from_logits else preds
        if not torch.all(torch.isfinite(preds)):
            raise MetricError("preds contain NaN or infinite values")
        if self.from_logits:
            return torch.sigmoid(preds.float())
        if preds.numel() and (float(preds.min()) < 0 or float(preds.max()) > 1):
            raise MetricError(
                "preds are outside [0, 1]: pass probabilities (sigmoid of the logits) or build the metric "
                "with from_logits=True"
            )
        return preds

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch: ``preds`` ``[B, C]`` scores, ``target`` ``[B, C]`` multi-hot."""
        probs = self._probs(preds)
        target = _as_tensor(target).to(probs.device)
        if tuple(target.shape) != tuple(probs.shape):
            raise MetricError(f"target shape {tuple(target.shape)} differs from preds shape {tuple(probs.shape)}")
        if self.checks == "compute":
            self.bad_target += ((target != 0) & (target != 1)).sum().to(self.bad_target.device)
            y = target.bool()
        else:
            y = _check_binary(target, "target")
        # float64 comparison: a tuned threshold lies strictly between two float32 scores only in float64
        p = probs.double() >= self.threshold.to(probs.device)
        tp = p & y
        fp = p & ~y
        fn = ~p & y
        self.tp += tp.sum(0)
        self.fp += fp.sum(0)
        self.fn += fn.sum(0)
        self.tn += (~p & ~y).sum(0)
        self.n_samples += y.shape[0]
        self.n_exact += (p == y).all(1).sum()
        s_tp, s_fp, s_fn = tp.sum(1), fp.sum(1), fn.sum(1)
        per_sample = torch.stack(
            [
                _div(s_tp, s_tp + s_fp),
                _div(s_tp, s_tp + s_fn),
                _fbeta(s_tp, s_fp, s_fn, 1.0),
                _fbeta(s_tp, s_fp, s_fn, 2.0),
                _div(s_tp, s_tp + s_fp + s_fn),
            ]
        )
        self.sample_sums += per_sample.sum(1).to(self.sample_sums.device)
        if self.ranking:
            self.scores.append(probs.float())
            self.targets.append(y.to(torch.uint8))

    # ---- compute -----------------------------------------------------------------------------
    def compute(self) -> dict[str, Any]:
        """The flat metric dict plus ``"per_class"`` (see the class docstring)."""
        _raise_deferred(
            self,
            "preds contain NaN or infinite values or probabilities outside [0, 1]",
            "target must be 0/1 (multi-hot); got other values",
        )
        tp, fp, fn, tn = (t.double().cpu() for t in (self.tp, self.fp, self.fn, self.tn))
        n = int(self.n_samples)
        support = tp + fn
        out: dict[str, Any] = {}
        per: dict[str, Tensor] = {
            "precision": _div(tp, tp + fp),
            "recall": _div(tp, tp + fn),
            "f1": _fbeta(tp, fp, fn, 1.0),
            "f2": _fbeta(tp, fp, fn, 2.0),
        }
        s_tp, s_fp, s_fn = tp.sum(), fp.sum(), fn.sum()
        micro = {
            "precision": _div(s_tp, s_tp + s_fp),
            "recall": _div(s_tp, s_tp + s_fn),
            "f1": _fbeta(s_tp, s_fp, s_fn, 1.0),
            "f2": _fbeta(s_tp, s_fp, s_fn, 2.0),
        }
        sums = self.sample_sums.double().cpu()
        for i, m in enumerate(_PRF):
            out[f"{m}_micro"] = float(micro[m])
            out[f"{m}_macro"] = float(per[m].mean())
            out[f"{m}_weighted"] = float(_div((per[m] * support).sum(), support.sum()))
            out[f"{m}_samples"] = float(sums[i] / n) if n else 0.0
        iou = _div(tp, tp + fp + fn)
        out["paper_accuracy_micro"] = float(_div(s_tp, s_tp + s_fp + s_fn))
        out["paper_accuracy_macro"] = float(iou.mean())
        out["jaccard_samples"] = float(sums[4] / n) if n else 0.0
        out["hamming_loss"] = float((s_fp + s_fn) / (n * self.num_classes)) if n else 0.0
        out["subset_accuracy"] = float(int(self.n_exact) / n) if n else 0.0
        ap = auroc = torch.full((self.num_classes,), math.nan, dtype=torch.float64)
        if self.ranking:
            scores, targets = self._gathered()
            ap, auroc, ranking = _ranking_metrics(scores, targets)
            out.update(ranking)
        out["num_samples"] = float(n)
        thr = self.threshold.double().cpu()
        rows = {}
        for i, name in enumerate(self.classes):
            rows[name] = {
                "threshold": float(thr[i]),
                "support": float(support[i]),
                "predicted": float(tp[i] + fp[i]),
                "tp": float(tp[i]),
                "fp": float(fp[i]),
                "fn": float(fn[i]),
                "tn": float(tn[i]),
                "precision": float(per["precision"][i]),
                "recall": float(per["recall"][i]),
                "f1": float(per["f1"][i]),
                "f2": float(per["f2"][i]),
                "iou": float(iou[i]),
                "ap": float(ap[i]),
                "auroc": float(auroc[i]),
            }
        out["per_class"] = rows
        return out

    def _gathered(self) -> tuple[Tensor, Tensor]:
        """Scores and targets of every sample seen (synchronised across ranks by ``compute``)."""
        scores, targets = self.scores, self.targets
        if isinstance(scores, list):  # not synchronised (one process): a list of batches
            if not scores:
                empty = torch.zeros(0, self.num_classes)
                return empty, empty.to(torch.uint8)
            return torch.cat(scores).cpu(), torch.cat(targets).cpu()
        return scores.cpu(), targets.cpu()

    def tune_thresholds(self, default: float = 0.5) -> Tensor:
        """Per-class F1-maximising thresholds from the scores seen so far (needs ``ranking=True``).

        Call it on the validation metric at the end of validation; it synchronises across ranks like
        ``compute``. Pass the result as ``threshold`` to the test metric.
        """
        if not self.ranking:
            raise MetricError("threshold tuning needs the scores: build the metric with ranking=True")
        # torchmetrics syncs in compute() only, so sync explicitly (a no-op without a process group).
        with self.sync_context(should_sync=True, should_unsync=True):
            scores, targets = self._gathered()
            return tune_thresholds(scores, targets, default=default)


#: Alias with torchmetrics' spelling (``MultilabelF1Score``).
MultilabelMetrics = MultiLabelMetrics


def _ranking_metrics(scores: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, dict[str, float]]:
    """Per-class AP and AUROC (NaN where undefined), their macro means over defined classes, and micro AP/AUROC."""
    c = scores.shape[1]
    ap = torch.full((c,), math.nan, dtype=torch.float64)
    auroc = torch.full((c,), math.nan, dtype=torch.float64)
    scores = scores.double()  # AP/AUROC in float64, as scikit-learn computes them
    y = targets.long()
    pos = y.sum(0)
    neg = y.shape[0] - pos
    for i in range(c):
        if pos[i] > 0:
            ap[i] = float(binary_average_precision(scores[:, i], y[:, i]))
        if pos[i] > 0 and neg[i] > 0:
            auroc[i] = float(binary_auroc(scores[:, i], y[:, i]))
    flat_s, flat_y = scores.flatten(), y.flatten()
    n_pos = int(flat_y.sum())
    out = {
        "map_micro": float(binary_average_precision(flat_s, flat_y)) if n_pos > 0 else math.nan,
        "map_macro": float(ap[~ap.isnan()].mean()) if (~ap.isnan()).any() else math.nan,
        "map_macro_classes": float((~ap.isnan()).sum()),
        "auroc_micro": float(binary_auroc(flat_s, flat_y)) if 0 < n_pos < flat_y.numel() else math.nan,
        "auroc_macro": float(auroc[~auroc.isnan()].mean()) if (~auroc.isnan()).any() else math.nan,
        "auroc_macro_classes": float((~auroc.isnan()).sum()),
    }
    return ap, auroc, out


def multilabel_metrics(
    preds: Tensor | np.ndarray,
    target: Tensor | np.ndarray,
    classes: Sequence[str],
    *,
    threshold: float | Sequence[float] | Tensor = 0.5,
    from_logits: bool = False,
    ranking: bool = True,
) -> dict[str, Any]:
    """One-shot :class:`MultiLabelMetrics` over complete arrays (e.g. a saved prediction table)."""
    m = MultiLabelMetrics(classes, threshold=threshold, from_logits=from_logits, ranking=ranking)
    m.update(_as_tensor(preds), _as_tensor(target))
    return m.compute()


def tune_thresholds(scores: Tensor | np.ndarray, target: Tensor | np.ndarray, *, default: float = 0.5) -> Tensor:
    """For each class, the threshold that maximises that class's F1 on (``scores``, ``target``).

    Candidates are the cuts between consecutive distinct scores; among equally good cuts the highest
    (fewest positives) wins, and the threshold is placed midway between the lowest score kept and the
    next lower score, so that slightly different test scores fall on the same side. A class with no
    positive sample has no F1 to maximise and keeps ``default``. Rule for use: ``score >= threshold``.
    """
    s = _as_tensor(scores).detach().double().cpu()
    y = _check_binary(_as_tensor(target).cpu(), "target")
    if s.ndim != 2 or tuple(s.shape) != tuple(y.shape):
        raise MetricError(f"scores {tuple(s.shape)} and target {tuple(y.shape)} must both be [N, C]")
    out = torch.full((s.shape[1],), float(default), dtype=torch.float64)
    for c in range(s.shape[1]):
        n_pos = int(y[:, c].sum())
        if n_pos == 0:
            continue
        order = torch.argsort(s[:, c], descending=True, stable=True)
        sc = s[order, c]
        tp = torch.cumsum(y[order, c].long(), 0).double()
        # cut after index k only where the next score differs (ties go together)
        last = torch.ones_like(sc, dtype=torch.bool)
        last[:-1] = sc[:-1] != sc[1:]
        k = torch.nonzero(last).flatten()
        f1 = 2 * tp[k] / (k.double() + 1 + n_pos)
        best = int(k[int(torch.argmax(f1))])  # argmax returns the first maximum: the highest cut
        hi = float(sc[best])
        if best + 1 < sc.numel():
            lo = float(sc[best + 1])
            mid = (hi + lo) / 2
            out[c] = mid if lo < mid <= hi else hi
        else:
            out[c] = hi
    return out


def best_constant_baseline(target: Tensor | np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Scores of the best prediction that ignores the input, from the labels alone.

    * ``f1_micro``: the same class set predicted for every sample; the best set is the ``k`` most
      frequent classes for some ``k`` (adding class c adds ``2 n_c`` to the numerator and ``n_c + N`` to
      the denominator of micro-F1, a ratio maximised by a prefix in order of ``n_c``), so all ``k`` are tried.
    * ``f1_macro``: per class, "always" scores ``2 n_c / (N + n_c)`` and "never" scores 0, so every class
      that occurs is predicted always.
    * ``map_micro`` / ``map_macro``: a constant score ranks nothing, so AP equals the prevalence
      (micro: over all labels; macro: mean over classes with a positive, as :class:`MultiLabelMetrics`).

    Returns floats under those keys plus ``f1_micro_classes`` / ``f1_macro_classes`` (names predicted).
    """
    names = _classes(classes)
    y = _check_binary(_as_tensor(target).cpu(), "target")
    if y.ndim != 2 or y.shape[1] != len(names):
        raise MetricError(f"target must be [N, {len(names)}], got {tuple(y.shape)}")
    n = int(y.shape[0])
    if n == 0:
        raise MetricError("the baseline needs at least one sample")
    counts = y.sum(0).double()
    total = float(counts.sum())
    order = torch.argsort(counts, descending=True, stable=True)
    # predicting the set S for all N samples: tp = sum_S n_c, 2tp + fp + fn = |S| N + total
    best_f1, best_k, tp = 0.0, 0, 0.0
    for k in range(1, len(names) + 1):
        tp += float(counts[order[k - 1]])
        f1 = 2 * tp / (k * n + total)
        if f1 > best_f1 + 1e-15:
            best_f1, best_k = f1, k
    per_class = torch.where(counts > 0, 2 * counts / (n + counts), torch.zeros_like(counts))
    present = counts > 0
    return {
        "f1_micro": best_f1,
        "f1_macro": float(per_class.mean()),
        "map_micro": total / (n * len(names)),
        "map_macro": float((counts[present] / n).mean()) if present.any() else math.nan,
        "f1_micro_classes": [names[int(i)] for i in order[:best_k]],
        "f1_macro_classes": [names[i] for i in range(len(names)) if present[i]],
    }


# --------------------------------------------------------------------------------------------------
# single-label (multi-class)
# --------------------------------------------------------------------------------------------------


class MultiClassMetrics(Metric):
    """Single-label metrics (EuroSAT): accuracy, macro/weighted P/R/F1, per-class table, from a summed confusion matrix.

    ``update(preds, target)``: ``preds`` ``[B, C]`` scores (probabilities or logits: only the argmax
    matters) or ``[B]`` class indices; ``target`` ``[B]`` class indices or ``[B, C]`` one-hot rows.
    ``compute()`` returns ``{key: float for key in MULTICLASS_KEYS} | {"per_class": {name: row}}`` with
    rows of precision, recall, f1, support, predicted. The confusion matrix (rows = true class) is
    :attr:`confmat`. ``checks``: as :class:`MultiLabelMetrics`.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    confmat: Tensor

    def __init__(self, classes: Sequence[str], *, checks: str = "update", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.classes = _classes(classes)
        self.num_classes = len(self.classes)
        self.checks = _checks_mode(checks)
        c = self.num_classes
        self.add_state("confmat", default=torch.zeros(c, c, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("bad_preds", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("bad_target", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def _indices(self, x: Tensor, what: str, *, one_hot: bool) -> Tensor:
        x = _as_tensor(x).detach()
        c = self.num_classes
        if x.ndim == 2:
            if x.shape[1] != c:
                raise MetricError(f"{what} must be [batch] or [batch, {c}], got {tuple(x.shape)}")
            if self.checks == "compute":  # count on the device, raise in compute()
                bad = (((x != 0) & (x != 1)).any(1) | ((x != 0).sum(1) != 1)) if one_hot else ~torch.isfinite(x).all(1)
                counter = self.bad_target if one_hot else self.bad_preds
                counter += bad.sum().to(counter.device)
                return x.argmax(1)
            if one_hot:
                h = _check_binary(x, what)
                if x.shape[0] and not torch.all(h.sum(1) == 1):
                    raise MetricError(f"{what} rows must be one-hot (exactly one class per sample)")
                return h.long().argmax(1)
            if not torch.all(torch.isfinite(x)):
                raise MetricError(f"{what} contain NaN or infinite values")
            return x.argmax(1)
        if x.ndim != 1 or x.dtype.is_floating_point:
            raise MetricError(f"{what} must be [batch] class indices or [batch, {c}], got {tuple(x.shape)} {x.dtype}")
        if self.checks == "compute":
            counter = self.bad_target if one_hot else self.bad_preds
            counter += ((x < 0) | (x >= c)).sum().to(counter.device)
            return x.long().clamp(0, c - 1)
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= c):
            raise MetricError(f"{what} class indices must be in [0, {c}); got [{int(x.min())}, {int(x.max())}]")
        return x.long()

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add one batch (see the class docstring for the accepted shapes)."""
        p = self._indices(preds, "preds", one_hot=False)
        t = self._indices(target, "target", one_hot=True).to(p.device)
        if p.shape != t.shape:
            raise MetricError(f"preds ({p.numel()} samples) and target ({t.numel()} samples) differ in length")
        c = self.num_classes
        # index_add_, not bincount: bincount reads min/max back to the host on a GPU
        cells = (t * c + p).to(self.confmat.device)
        self.confmat.view(-1).index_add_(0, cells, torch.ones_like(cells))

    def compute(self) -> dict[str, Any]:
        """The flat metric dict plus ``"per_class"`` (see the class docstring)."""
        _raise_deferred(
            self,
            "preds contain NaN or infinite values or class indices out of range",
            "target rows must be one-hot (exactly one class per sample), or indices in range",
        )
        cm = self.confmat.double().cpu()
        tp = cm.diag()
        support = cm.sum(1)
        predicted = cm.sum(0)
        n = float(cm.sum())
        per = {
            "precision": _div(tp, predicted),
            "recall": _div(tp, support),
            "f1": _div(2 * tp, support + predicted),
        }
        out: dict[str, Any] = {"accuracy": float(tp.sum() / n) if n else 0.0}
        for m in ("precision", "recall", "f1"):
            out[f"{m}_macro"] = float(per[m].mean())
            out[f"{m}_weighted"] = float(_div((per[m] * support).sum(), support.sum()))
        out["num_samples"] = n
        out["per_class"] = {
            name: {
                "support": float(support[i]),
                "predicted": float(predicted[i]),
                **{m: float(per[m][i]) for m in per},
            }
            for i, name in enumerate(self.classes)
        }
        return out


def majority_baseline(target: Tensor | np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Best constant single-label prediction: always the most frequent class (best for accuracy and macro-F1).

    Predicting class c for all N samples gives accuracy ``n_c / N`` and macro-F1 ``2 n_c / (N + n_c) / C``,
    both largest for the most frequent class.
    """
    m = MultiClassMetrics(classes)
    t = m._indices(target, "target", one_hot=True)
    if t.numel() == 0:
        raise MetricError("the baseline needs at least one sample")
    counts = torch.bincount(t, minlength=m.num_classes)
    top = int(torch.argmax(counts))
    m.update(torch.full_like(t, top), t)
    res = m.compute()
    return {"accuracy": res["accuracy"], "f1_macro": res["f1_macro"], "class": m.classes[top]}
