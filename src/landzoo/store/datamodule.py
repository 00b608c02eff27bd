"""Lightning DataModule over a store: train/val/test loaders of whole batches, DDP-aware, optionally preloaded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from landzoo.store.format import StoreError
from landzoo.store.reader import Mode, Store, StoreDataset, Verify

__all__ = ["StoreDataModule"]


class StoreDataModule(L.LightningDataModule):
    """Loaders over the ``train``/``val``/``test`` splits of one store.

    Each rank reads a disjoint part of every epoch and the ranks together read the whole split (see
    :func:`landzoo.store.reader.batch_plan`); rank and world size come from the attached Trainer. Training
    batches are reshuffled per epoch from ``seed`` (Lightning calls ``set_epoch`` on the sampler).
    ``mode="device"`` preloads each split onto the Trainer's device (``num_workers`` must then be 0).
    Batches are raw (uint16, native resolution): the model side applies
    :class:`landzoo.transforms.InputTransform` on the device.
    """

    def __init__(
        self,
        store: str | os.PathLike,
        *,
        bands: str | Sequence[str] | None = None,
        classes: str | Sequence[str] | None = None,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        mode: Mode = "mmap",
        device: str | torch.device | None = None,
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool = False,
        verify: Verify = "once",
        threads: int | None = None,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "test",
    ) -> None:
        super().__init__()
        self.store_path = store
        self.bands = bands
        self.classes = classes
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.mode: Mode = mode
        self.device = device
        self.seed = seed
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.verify: Verify = verify
        #: copy threads of the main-process gather (StoreDataset ``threads``; loader workers always use 1)
        self.threads = threads
        self.split_names = {"train": train_split, "val": val_split, "test": test_split}
        self._store: Store | None = None
        self.datasets: dict[str, StoreDataset] = {}
        if mode == "device" and num_workers > 0:
            raise StoreError("mode='device' reads in the main process: use num_workers=0")

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.store_path)
            self._store.check_contract(self.bands, self.classes)  # fail at construction time of the loaders
        return self._store

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        """Band groups (and channel order) of the batches: what the model's InputTransform must expect."""
        return self.store.check_contract(self.bands, self.classes)

    def _dataset(self, role: str) -> StoreDataset:
        if role not in self.datasets:
            device = self.device
            if self.mode == "device" and device is None and self.trainer is not None:
                device = self.trainer.strategy.root_device
            self.datasets[role] = StoreDataset(
                self.store,
                self.split_names[role],
                bands=self.bands,
                classes=self.classes,
                mode=self.mode,
                device=device,
                verify=self.verify,
                threads=self.threads,
            )
        return self.datasets[role]

    def teardown(self, stage: str | None = None) -> None:
        """Stop copy threads and drop memory maps after each stage (they reopen lazily if used again)."""
        for ds in self.datasets.values():
            ds.close()

    def setup(self, stage: str | None = None) -> None:
        roles = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for role in roles.get(stage or "", ("train", "val", "test")):
            self._dataset(role)

    def _ranks(self) -> dict[str, Any]:
        trainer = self.trainer
        if trainer is not None:
            return {"num_replicas": trainer.world_size, "rank": trainer.global_rank}
        return {}

    def _loader(self, role: str, shuffle: bool) -> DataLoader:
        ds = self._dataset(role)
        return ds.loader(
            self.batch_size if role == "train" else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.seed,
            drop_last=self.drop_last if role == "train" else False,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and self.mode != "device",
            **self._ranks(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Move tensors (the ``id`` list of strings stays as it is)."""
        return {
            "image": {g: t.to(device, non_blocking=True) for g, t in batch["image"].items()},
            "label": batch["label"].to(device, non_blocking=True),
            "index": batch["index"].to(device, non_blocking=True),
            "id": batch["id"],
        }
