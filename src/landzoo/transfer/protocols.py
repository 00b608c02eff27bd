"""Transfer protocols as data, the target data they read, and the explicit handling of patch resolution.

Protocols (:data:`PROTOCOLS`, :func:`get_protocol`):

``sen12ms``
    Scene classification of Schmitt & Wu 2021 (the official ``classification/dataset.py``): the 17 IGBP
    coverage fractions of ``IGBP_probability_labels.pkl`` summed into the simplified 10 classes, multi-label
    where a class covers ``>= 0.1`` of the patch (BCE on sigmoid outputs, micro-F1 selects and is the score;
    macro-F1, mAP reported), or single-label (``single_label=True``: the argmax, softmax cross-entropy,
    accuracy). Official train/test lists; validation = whole *scenes* held out from train (10 % of the
    train scenes, at least one, seeded with the official 2071), because patches of one scene are near
    duplicates and a patch-level split would leak. S2 bands are chosen by name (default the paper's 10).
    When the store's index keeps the IGBP fractions (it does for SEN12MS), labels are recomputed from them
    with the exact rule, so one store serves both the multi-label and the single-label protocol.
``eurosat``
    Single-label, 10 classes: softmax cross-entropy, accuracy (score, selection) and macro-F1. The common
    ``eurosat-{train,val,test}.txt`` lists (Neumann et al. 2019) when the store has those splits; otherwise a
    seeded class-stratified 60/20/20 split (:func:`landzoo.datasets.eurosat.stratified_split`, seed 0).
``bigearthnet-v1`` / ``bigearthnet-v2``
    Multi-label BigEarthNet-19 with the official splits, BCE, micro-F1.

Resolution (:class:`Resolution`, the training engine's input policy, :mod:`landzoo.training.inputs`): all three datasets are at 10 m but their patches differ (SEN12MS 256 px,
BigEarthNet 120 px, EuroSAT 64 px) and every model has its own input size (WRN 60 px, ResNet 120 px, ...).

``resize`` (default)
    Every band group is resampled (TF-exact bicubic, :mod:`landzoo.transforms`) straight to the model's
    input size: the whole patch is seen, the ground sampling distance changes (SEN12MS 256 -> 120 px:
    21 m pixels; EuroSAT 64 -> 120 px: 5.3 m).
``crop``
    Every band group is brought to the 10 m grid, then a window of the model's input size is cut at native
    10 m: random position for training, centred for validation, test and feature extraction. A patch
    smaller than the window is padded symmetrically with zeros *after* normalisation (the band means).
    The pixel size stays the pretraining one, part of a large patch is unseen.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from landzoo import contract
from landzoo.errors import LandzooError
from landzoo.training.inputs import RESOLUTION_MODES, Resolution

if TYPE_CHECKING:
    from torch import Tensor

__all__ = [
    "PROTOCOLS",
    "RESOLUTION_MODES",
    "ProtocolError",
    "Resolution",
    "TargetData",
    "TransferProtocol",
    "band_stats_from",
    "get_protocol",
    "open_target",
]


class ProtocolError(LandzooError):
    """A target dataset or store that does not fit the transfer protocol (class set, splits, labels, bands)."""


@dataclass(frozen=True)
class TransferProtocol:
    """How one target dataset is trained and scored."""

    dataset: str
    class_set: str
    task: str  # "multilabel" or "singlelabel"
    threshold: float = 0.1  # SEN12MS: coverage fraction that makes a class present
    val_scene_share: float = 0.1  # SEN12MS: share of the train scenes held out as validation
    val_seed: int = 2071
    split_shares: Mapping[str, float] = field(default_factory=lambda: {"train": 0.6, "val": 0.2, "test": 0.2})
    split_seed: int = 0
    description: str = ""

    @property
    def loss(self) -> str:
        return "bce" if self.task == "multilabel" else "ce"

    @property
    def score(self) -> str:
        """The metric of the table and the plot, also used to select the epoch on validation."""
        return "f1_micro" if self.task == "multilabel" else "accuracy"

    @property
    def report_metrics(self) -> tuple[str, ...]:
        if self.task == "multilabel":
            return ("f1_micro", "f1_macro", "map_macro", "precision_micro", "recall_micro")
        return ("accuracy", "f1_macro", "precision_macro", "recall_macro")

    @property
    def classes(self) -> tuple[str, ...]:
        return contract.class_set(self.class_set)

    def metric(self) -> Any:
        """A fresh :mod:`landzoo.metrics` collection for this task (fed probabilities)."""
        from landzoo.metrics import MultiClassMetrics, MultiLabelMetrics

        if self.task == "multilabel":
            return MultiLabelMetrics(self.classes)
        return MultiClassMetrics(self.classes)

    def loss_fn(self, logits: Tensor, target: Tensor) -> Tensor:
        """BCE on sigmoid outputs (multi-label) or softmax cross-entropy on the one-hot's class."""
        import torch.nn.functional as F

        if self.task == "multilabel":
            return F.binary_cross_entropy_with_logits(logits.float(), target.float())
        return F.cross_entropy(logits.float(), target.argmax(1))

    def probabilities(self, logits: Tensor) -> Tensor:
        import torch

        return torch.sigmoid(logits.float()) if self.task == "multilabel" else torch.softmax(logits.float(), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "class_set": self.class_set,
            "task": self.task,
            "loss": self.loss,
            "score": self.score,
            "threshold": self.threshold if self.dataset == "sen12ms" else None,
            "description": self.description,
        }


PROTOCOLS: Final = MappingProxyType(
    {
        "sen12ms": TransferProtocol(
            "sen12ms",
            "sen12ms_simple10",
            "multilabel",
            description="SEN12MS scene classification, simplified IGBP (10), multi-label at coverage >= 0.1, "
            "official train/test lists, validation = whole train scenes held out",
        ),
        "eurosat": TransferProtocol(
            "eurosat",
            "eurosat10",
            "singlelabel",
            description="EuroSAT MS, 10 classes, single-label (softmax cross-entropy), common split lists or a "
            "seeded stratified 60/20/20 split",
        ),
        "bigearthnet-v1": TransferProtocol(
            "bigearthnet-v1", "ben19", "multilabel", description="BigEarthNet v1, 19 classes, official splits"
        ),
        "bigearthnet-v2": TransferProtocol(
            "bigearthnet-v2", "ben19", "multilabel", description="BigEarthNet v2, 19 classes, official splits"
        ),
    }
)


def get_protocol(dataset: str, *, single_label: bool = False, threshold: float | None = None) -> TransferProtocol:
    """The protocol of ``dataset``; SEN12MS takes ``single_label`` and a coverage ``threshold``."""
    try:
        proto = PROTOCOLS[dataset]
    except KeyError:
        raise ProtocolError(f"no transfer protocol for dataset {dataset!r}; known: {', '.join(PROTOCOLS)}") from None
    if dataset != "sen12ms":
        if single_label and proto.task != "singlelabel":
            raise ProtocolError(f"{dataset} is multi-label; --single-label applies to sen12ms only")
        if threshold is not None:
            raise ProtocolError(f"a coverage threshold applies to sen12ms only, not {dataset}")
        return proto
    from dataclasses import replace

    t = proto.threshold if threshold is None else float(threshold)
    if not 0.0 < t <= 1.0:
        raise ProtocolError(f"sen12ms coverage threshold must be in (0, 1], not {t}")
    if single_label:
        desc = "SEN12MS scene classification, simplified IGBP (10), single-label (argmax of the coverage fractions)"
        return replace(proto, task="singlelabel", threshold=t, description=desc)
    return replace(proto, threshold=t)


# --------------------------------------------------------------------------------------------------
# Target data: a store, its splits under the protocol, and labels
# --------------------------------------------------------------------------------------------------
@dataclass
class TargetData:
    """A target store read under a protocol: positions of each split, labels, band layout.

    ``dataset`` is a :class:`landzoo.store.StoreDataset` over *all* rows of the store (split ``None``);
    ``splits`` maps ``train``/``val``/``test`` to sorted positions in it; ``labels`` ``[N, C]`` float32 are the
    protocol's labels of every row (recomputed from the IGBP fractions for SEN12MS).
    """

    protocol: TransferProtocol
    store_path: Path
    dataset: Any
    bands: tuple[str, ...]
    native_groups: bool
    grid_px: int
    splits: dict[str, np.ndarray]
    labels: np.ndarray
    split_source: str
    ids: np.ndarray

    def batch(self, positions: np.ndarray | Sequence[int]) -> dict[str, Any]:
        """Raw band groups (uint16, native) and protocol labels of ``positions`` (returned sorted)."""
        import torch

        b = self.dataset.get_batch(np.asarray(positions, dtype=np.int64))
        b["label"] = torch.from_numpy(self.labels[b["index"].numpy()])
        return b

    def summary(self) -> dict[str, Any]:
        lab = self.labels
        return {
            "store": str(self.store_path),
            "bands": list(self.bands),
            "grid_px": self.grid_px,
            "split_source": self.split_source,
            "patches": {k: len(v) for k, v in self.splits.items()},
            "class_counts_train": {
                c: int(lab[self.splits["train"], i].sum()) for i, c in enumerate(self.protocol.classes)
            },
        }


def _grid_px(groups: Mapping[str, Any]) -> int:
    """Side of the patch on the 10 m grid, from the stored band groups (the largest group in metres / 10)."""
    best = 0
    for spec in groups.values():
        gsd = max(contract.band(b).gsd_m for b in spec.bands)
        size = spec.shape[-1]
        # groups already on one grid (SEN12MS, EuroSAT) are 10 m whatever the band's sensor resolution
        metres = size * (10 if spec.name in ("10m", "s1") else gsd)
        best = max(best, metres // 10)
    return int(best)


def _meta_rows(store: Any) -> list[dict[str, Any]]:
    col = store.table.column("meta").to_pylist() if "meta" in store.table.column_names else [None] * len(store)
    return [json.loads(m) if m else {} for m in col]


def _sen12ms_labels(store: Any, proto: TransferProtocol) -> tuple[np.ndarray, str]:
    """Protocol labels of every row from the IGBP fractions in the index (the official rule)."""
    from landzoo.datasets.sen12ms import fractions_to_labels

    metas = _meta_rows(store)
    if not all("igbp" in m for m in metas):
        if proto.task == "singlelabel" or store.class_set != proto.class_set:
            raise ProtocolError(
                f"store {store.path} keeps no IGBP fractions in its index, so the {proto.task} "
                f"{proto.class_set} labels cannot be derived; re-encode it with `landzoo encode --dataset sen12ms`"
            )
        return store.labels.astype(np.float32), "store labels"
    out = np.zeros((len(store), len(proto.classes)), dtype=np.float32)
    for i, m in enumerate(metas):
        names = fractions_to_labels(
            np.asarray(m["igbp"], dtype=np.float64),
            proto.class_set,
            threshold=proto.threshold,
            single_label=proto.task == "singlelabel",
        )
        out[i] = contract.multi_hot(names, proto.classes)
    return (
        out,
        f"IGBP fractions -> {proto.class_set} ({'argmax' if proto.task == 'singlelabel' else f'>= {proto.threshold}'})",
    )


def _sen12ms_val(
    ids: np.ndarray, train: np.ndarray, proto: TransferProtocol
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from landzoo.datasets.sen12ms import scene_of

    scenes = np.array([scene_of(str(i)) for i in ids[train]])
    unique = sorted(set(scenes.tolist()))
    if len(unique) < 2:
        raise ProtocolError(
            f"sen12ms: the train split has {len(unique)} scene(s); holding whole scenes out for validation needs two"
        )
    count = min(len(unique) - 1, max(1, round(proto.val_scene_share * len(unique))))
    rng = np.random.default_rng(proto.val_seed)
    chosen = sorted(unique[i] for i in rng.choice(len(unique), size=count, replace=False))
    is_val = np.isin(scenes, chosen)
    return train[~is_val], train[is_val], chosen


def open_target(
    store_path: str | Path,
    protocol: TransferProtocol,
    *,
    bands: str | Sequence[str] | None = None,
    mode: str = "mmap",
) -> TargetData:
    """Open a store under ``protocol``: check dataset and class set, build splits and labels."""
    from landzoo.store import Store, StoreDataset, StoreError

    try:
        store = Store(store_path)
    except StoreError as err:
        raise ProtocolError(str(err)) from None
    if store.dataset != protocol.dataset:
        raise ProtocolError(f"store {store.path} holds {store.dataset}, not {protocol.dataset}")
    if protocol.dataset == "sen12ms":
        labels, label_source = _sen12ms_labels(store, protocol)
    else:
        if store.class_set != protocol.class_set:
            raise ProtocolError(
                f"store {store.path} is labelled with {store.class_set}; the {protocol.dataset} protocol needs "
                f"{protocol.class_set} (re-encode with --classes {protocol.class_set})"
            )
        labels, label_source = store.labels.astype(np.float32), "store labels"
    if protocol.task == "singlelabel":
        bad = np.flatnonzero(labels.sum(1) != 1)
        if len(bad):
            raise ProtocolError(
                f"store {store.path}: patch {store.ids[bad[0]]} has {int(labels[bad[0]].sum())} labels; "
                "single-label training needs exactly one per patch"
            )
    try:
        ds = StoreDataset(store, None, bands=bands, classes=None, mode=mode)  # type: ignore[arg-type]
    except StoreError as err:
        raise ProtocolError(str(err)) from None
    split = np.asarray([s or "none" for s in store.split], dtype=object)
    ids = store.ids
    splits: dict[str, np.ndarray] = {}
    if protocol.dataset == "sen12ms":
        train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
        if not len(train) or not len(test):
            raise ProtocolError(f"store {store.path} has no train or no test split (official lists missing?)")
        if (split == "val").any():
            val = np.flatnonzero(split == "val")
            source = f"official train/test lists; validation scenes as encoded in the store ({len(val)} patches)"
        else:
            train, val, chosen = _sen12ms_val(ids, train, protocol)
            source = (
                f"official train/test lists; validation = {len(chosen)} whole train scene(s) held out "
                f"(seed {protocol.val_seed}): {', '.join(chosen[:5])}{' ...' if len(chosen) > 5 else ''}"
            )
        splits = {"train": train, "val": val, "test": test}
    elif {"train", "val", "test"} <= set(split.tolist()):
        splits = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
        source = "the store's splits (official / common lists)"
    elif protocol.dataset == "eurosat":
        from landzoo.datasets.eurosat import stratified_split

        assigned = np.asarray(stratified_split(labels.argmax(1).tolist(), protocol.split_shares, protocol.split_seed))
        splits = {s: np.flatnonzero(assigned == s) for s in ("train", "val", "test")}
        shares = "/".join(f"{round(100 * v)}" for v in protocol.split_shares.values())
        source = f"seeded stratified {shares} split (seed {protocol.split_seed}; no split lists in the store)"
    else:
        raise ProtocolError(
            f"store {store.path} lacks a train, val or test split; it has {', '.join(sorted(set(split.tolist())))}"
        )
    for name, pos in splits.items():
        if len(pos) == 0:
            raise ProtocolError(f"store {store.path}: the {name} split is empty under the {protocol.dataset} protocol")
    return TargetData(
        protocol=protocol,
        store_path=store.path,
        dataset=ds,
        bands=ds.bands,
        native_groups=store.native_groups,
        grid_px=_grid_px(ds.store.groups),
        splits=splits,
        labels=labels,
        split_source=f"{source}; labels: {label_source}",
        ids=ids,
    )


def band_stats_from(
    target: TargetData, positions: np.ndarray, *, max_patches: int = 2000, seed: int = 0, batch_size: int = 64
) -> dict[str, tuple[float, float]]:
    """Per-band (mean, std) of raw values over ``positions`` (a seeded sample of at most ``max_patches``).

    Computed in float64 over every pixel of the sampled patches at native resolution; the training split's
    images are used whatever the label fraction (statistics need no labels).
    """
    import torch

    pos = np.asarray(positions, dtype=np.int64)
    if len(pos) > max_patches:
        pos = np.sort(np.random.default_rng([seed, 0x57A7]).choice(pos, size=max_patches, replace=False))
    sums: dict[str, list[float]] = {}
    for a in range(0, len(pos), batch_size):
        batch = target.dataset.get_batch(pos[a : a + batch_size])
        for g, names in target.dataset.groups.items():
            x = batch["image"][g].to(torch.float64)
            for k, b in enumerate(names):
                v = x[:, k]
                acc = sums.setdefault(b, [0.0, 0.0, 0.0])
                acc[0] += float(v.numel())
                acc[1] += float(v.sum())
                acc[2] += float((v * v).sum())
    out: dict[str, tuple[float, float]] = {}
    for b in target.bands:
        n, s, ss = sums[b]
        mean = s / n
        var = max(ss / n - mean * mean, 0.0)
        std = var**0.5
        if std <= 0:
            raise ProtocolError(f"band {b} is constant over the training patches of {target.store_path}: std 0")
        out[b] = (mean, std)
    return out
