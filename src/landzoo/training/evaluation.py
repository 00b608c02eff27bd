"""``landzoo test`` and ``landzoo predict``: a trained model on a store split, through the same Trainer setup.

The checkpoint is loaded by :func:`landzoo.training.loading.load_module` and checked against the store
(bands by name, classes in order) before anything is read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning as L

from landzoo.files import atomic_write, atomic_write_text, check_writable_dir
from landzoo.training import cost as cost_mod
from landzoo.training.callbacks import TestTimer
from landzoo.training.checks import check_store
from landzoo.training.config import TrainConfig
from landzoo.training.data import make_datamodule
from landzoo.training.engine import baseline
from landzoo.training.errors import RunError
from landzoo.training.loading import check_contract_against_store, load_module
from landzoo.training.module import LandCoverModule
from landzoo.training.trainer import make_trainer

__all__ = ["predict", "test"]


def _eval_setup(
    checkpoint: str | Path,
    store: str | Path,
    split: str,
    batch_size: int | None,
    num_workers: int | None,
    accelerator: str,
) -> tuple[LandCoverModule, L.LightningDataModule, TrainConfig]:
    store_path = check_store(store)
    module = load_module(checkpoint)
    check_contract_against_store(module.contract, store_path)
    cfg = module.cfg
    bs = batch_size or cfg.data.eval_batch_size or cfg.data.batch_size
    inner = make_datamodule(
        store_path,
        bands=module.bands,
        classes=module.class_set,
        batch_size=bs,
        eval_batch_size=bs,
        num_workers=cfg.data.num_workers if num_workers is None else num_workers,
        seed=cfg.seed,
        splits=(cfg.data.train_split, cfg.data.val_split, split),
        copy_threads=cfg.data.copy_threads,
    )
    inner.store.rows(split)  # a missing split is a one-line error now, not deep inside Lightning
    cfg.trainer.accelerator = accelerator
    return module, inner, cfg


def test(
    checkpoint: str | Path,
    store: str | Path,
    *,
    split: str = "test",
    batch_size: int | None = None,
    num_workers: int | None = None,
    accelerator: str = "auto",
    out: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a store split; refuses a store whose contract differs from the checkpoint's."""
    if out:
        check_writable_dir(Path(out).parent, what="--out folder")  # before the evaluation, not after
    module, inner, cfg = _eval_setup(checkpoint, store, split, batch_size, num_workers, accelerator)
    timer = TestTimer()
    root = Path(out).parent if out else Path(".")
    trainer = make_trainer(cfg, root, callbacks=[timer], progress=progress, devices=1, strategy="auto")
    trainer.test(module, datamodule=inner, verbose=False)
    labels = inner.datasets["test"].labels.cpu() if "test" in getattr(inner, "datasets", {}) else None
    res = {
        "checkpoint": str(checkpoint),
        "store": str(store),
        "split": split,
        "metrics": module.test_results.get("metrics", {}),
        "per_class": module.test_results.get("per_class", {}),
        "baseline": baseline(labels, module.classes),
        **timer.summary(trainer),
        "contract": module.contract,
        "env": cost_mod.environment_info(module.device),
    }
    if out:
        atomic_write_text(out, json.dumps(res, indent=2, default=_json_default) + "\n")
    return res


def predict(
    checkpoint: str | Path,
    store: str | Path,
    out: str | Path,
    *,
    split: str = "test",
    batch_size: int | None = None,
    num_workers: int | None = None,
    accelerator: str = "auto",
    progress: bool = True,
) -> Path:
    """Write one row per patch of ``split``: ``id`` then one probability column per class name (parquet/CSV)."""
    import numpy as np
    import pandas as pd

    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise RunError(f"--out {out}: choose a .parquet or .csv file name")
    check_writable_dir(out.parent, what="--out folder")  # before the predictions are computed, not after
    module, inner, cfg = _eval_setup(checkpoint, store, split, batch_size, num_workers, accelerator)
    trainer = make_trainer(cfg, out.parent, callbacks=[], progress=progress, devices=1, strategy="auto")
    parts = trainer.predict(module, datamodule=inner) or []
    ids: list[str] = []
    probs = []
    for p in parts:
        ids += [str(i) for i in p["id"]]
        probs.append(p["probs"].numpy())
    mat = np.concatenate(probs) if probs else np.zeros((0, len(module.classes)), dtype=np.float32)
    frame = pd.DataFrame(mat, columns=list(module.classes))
    frame.insert(0, "id", ids)
    if out.suffix.lower() == ".parquet":
        atomic_write(out, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(out, lambda tmp: frame.to_csv(tmp, index=False))
    return out


def _json_default(o: Any) -> Any:
    import torch

    if torch.is_tensor(o):
        return o.tolist()
    return str(o)
