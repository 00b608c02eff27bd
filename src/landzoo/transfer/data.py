"""The target side of a transfer: the store to read, the bands and statistics, and what each run trains on.

Every run reads the target store through the training engine's data path (:mod:`landzoo.training.data`):
a fine-tuning run gets the positions of its label fraction, the validation and the test split as batch
sources; a linear probe gets the classifier inputs of its training and validation patches, extracted once per
frozen encoder and kept in memory (on the run's device), and the test split as images, so that its test
score and inference rate are those of the whole model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landzoo import contract
from landzoo.training.data import BatchDataModule, Subset, TensorBatches
from landzoo.transfer.config import TransferConfig, TransferError
from landzoo.transfer.protocols import TargetData, TransferProtocol, band_stats_from
from landzoo.transfer.source import Source

__all__ = ["FeatureCache", "choose_bands", "open_data", "run_datamodule", "target_stats"]


def open_data(
    cfg: TransferConfig, proto: TransferProtocol, bands: tuple[str, ...] | None, out: Path, progress: bool
) -> Path:
    """The store to read: ``--data`` itself, or a store encoded from the raw folder into ``OUT/store``."""
    data = Path(cfg.data)
    if not data.exists():
        raise TransferError(f"--data {data} does not exist")
    if (data / "manifest.json").is_file():
        return data
    store = out / "store"
    if (store / "manifest.json").is_file():  # encoded by an earlier call (or by rank 0 before it started the others)
        return store
    from landzoo.training.trainer import env_rank

    if env_rank() != 0:
        raise TransferError(
            f"--data {data} is a raw folder: with several processes, encode it first (`landzoo encode --dataset "
            f"{proto.dataset} {data} --out STORE`) and pass the store"
        )
    from landzoo.files import check_writable_dir
    from landzoo.store.encode import encode

    check_writable_dir(out, what="--out folder")  # before the encode starts

    reader_kwargs: dict[str, Any] = {}
    if proto.dataset == "sen12ms":
        reader_kwargs = {"multilabel_threshold": proto.threshold, "patch_px": _sen12ms_patch_px(data)}
    encode(
        proto.dataset,
        data,
        store,
        bands=bands,
        classes=proto.class_set,
        reader_kwargs=reader_kwargs,
        workers=max(1, cfg.workers),
        progress=progress,
    )
    return store


def _sen12ms_patch_px(root: Path) -> int:
    """Side of the S2 patches of a raw SEN12MS folder (256 for the real data), read from its first S2 file."""
    from landzoo.datasets.sen12ms import SEASONS

    for season in SEASONS:
        for tif in sorted((root / season).glob("s2_*/*.tif")) if (root / season).is_dir() else []:
            import rasterio

            try:
                with rasterio.open(tif) as src:
                    return int(src.width)
            except rasterio.errors.RasterioError as err:
                raise TransferError(f"cannot read {tif}: {err}") from None
    return 256  # no S2 file: the reader reports the empty folder itself


def choose_bands(cfg: TransferConfig, source: Source, available: Sequence[str]) -> tuple[str, ...]:
    if cfg.bands:
        try:
            bands = contract.resolve_bands(cfg.bands)
        except contract.ContractError as err:
            raise TransferError(f"--bands: {err}") from None
        missing = [b for b in bands if b not in available]
        if missing:
            raise TransferError(f"the target data has no band(s) {', '.join(missing)}; it has {', '.join(available)}")
    else:
        bands = tuple(b for b in source.contract.bands if b in available)
    if not any(b in source.contract.bands for b in bands):
        raise TransferError(
            f"the target's bands ({','.join(bands or tuple(available))}) have no band in common with the checkpoint's "
            f"({','.join(source.contract.bands)})"
        )
    return bands


def target_stats(cfg: TransferConfig, source: Source, target: TargetData) -> tuple[dict[str, tuple[float, float]], str]:
    if cfg.stats == "train":
        stats = band_stats_from(target, target.splits["train"], max_patches=cfg.stats_patches, seed=0)
        n = min(len(target.splits["train"]), cfg.stats_patches)
        return stats, f"computed from {n} training patches of the target (all pixels, float64)"
    if cfg.stats == "checkpoint":
        missing = [b for b in target.bands if b not in source.contract.stats]
        if missing:
            raise TransferError(f"--stats checkpoint: the checkpoint has no statistics for {', '.join(missing)}")
        return {b: tuple(source.contract.stats[b]) for b in target.bands}, f"the checkpoint's ({source.path})"  # type: ignore[misc]
    path = Path(cfg.stats)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        stats = {b: (float(raw[b][0]), float(raw[b][1])) for b in target.bands}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as err:
        raise TransferError(
            f"--stats {path}: need a JSON object {{band: [mean, std]}} for {','.join(target.bands)} ({err})"
        ) from None
    return stats, f"given ({path})"


class FeatureCache:
    """Classifier inputs of the training and validation patches per frozen encoder, and the time they took.

    Keyed by the encoder's identity in the sweep (initialisation, encoder seed): every label fraction of a seed
    probes the same encoder, so its features are extracted once. One encoder's features at a time are kept.
    """

    def __init__(self) -> None:
        self.key: Any = None
        self.features: dict[str, Tensor] = {}
        self.seconds: dict[Any, float] = {}

    def get(
        self, key: Any, module: Any, target: TargetData, batch_size: int, device: torch.device
    ) -> dict[str, Tensor]:
        if key != self.key:
            self.features.clear()
            t0 = time.perf_counter()
            for split in ("train", "val"):
                self.features[split] = extract_features(module, target, target.splits[split], batch_size, device)
            self.seconds[key] = time.perf_counter() - t0
            self.key = key
        return self.features


@torch.no_grad()
def extract_features(
    module: Any, target: TargetData, positions: np.ndarray, batch_size: int, device: torch.device
) -> Tensor:
    """Inputs of the classifier for ``positions`` (in that order): centre view, encoder in eval mode, fp32."""
    from landzoo.training.module import classifier

    module.to(device)
    model = module.model
    captured: list[Tensor] = []
    hook = classifier(model).register_forward_pre_hook(
        lambda _m, args: captured.append(args[0].detach().flatten(1).float())
    )
    was_training = module.training
    module.eval()
    order = np.argsort(positions, kind="stable")
    ordered = positions[order]
    out: list[Tensor] = []
    try:
        for a in range(0, len(ordered), batch_size):
            batch = target.batch(ordered[a : a + batch_size])
            image = {g: t.to(device) for g, t in batch["image"].items()}
            model(module.stack(image))
            out.append(captured.pop())
    finally:
        hook.remove()
        module.train(was_training)
    feats = torch.cat(out)
    result = torch.empty_like(feats)
    result[torch.from_numpy(order).to(feats.device)] = feats  # batches come back sorted by position: undo the sort
    return result


def run_datamodule(
    target: TargetData,
    train_pos: np.ndarray,
    cfg: TransferConfig,
    *,
    batch_size: int,
    seed: int,
    probe: tuple[FeatureCache, Any] | None = None,
) -> BatchDataModule:
    """The DataModule of one run: its label fraction for training, the full validation and test splits.

    ``probe`` (a cache and the frozen encoder's key) trains on cached classifier inputs instead of images.
    """
    labels = torch.from_numpy(target.labels)

    def images(positions: np.ndarray) -> Subset:
        return Subset(target.batch, positions, labels[torch.from_numpy(np.asarray(positions, dtype=np.int64))])

    sources: dict[str, Any] = {
        "train": images(train_pos),
        "val": images(target.splits["val"]),
        "test": images(target.splits["test"]),
    }
    if probe is not None:
        cache, key = probe
        train_all = target.splits["train"]

        def cached(split: str):  # built at setup, when the Trainer's device and the module exist
            def build(dm: BatchDataModule) -> TensorBatches:
                device = dm.trainer.strategy.root_device
                feats = cache.get(key, dm.trainer.lightning_module, target, cfg.eval_batch_size, device)[split]
                if split == "train":
                    index = {int(p): i for i, p in enumerate(train_all)}
                    pos = np.sort(np.asarray(train_pos, dtype=np.int64))
                    rows = torch.tensor([index[int(p)] for p in pos], device=feats.device)
                    return TensorBatches(
                        {
                            "features": feats.index_select(0, rows),
                            "label": labels[torch.from_numpy(pos)].to(feats.device),
                        }
                    )
                pos = target.splits["val"]
                return TensorBatches({"features": feats, "label": labels[torch.from_numpy(pos)].to(feats.device)})

            return build

        sources["train"], sources["val"] = cached("train"), cached("val")
    return BatchDataModule(
        sources,
        batch_size=batch_size,
        eval_batch_size=cfg.eval_batch_size,
        seed=seed,
        num_workers=cfg.workers,
    )
