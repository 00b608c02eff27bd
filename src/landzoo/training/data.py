"""What the engine trains on: DataModules of whole batches, and the wrapper that makes a training epoch resumable.

The engine's contract with its data is narrow, so another data path plugs in without touching the
LightningModule's steps: a ``LightningDataModule`` whose loaders yield dict batches ``{"image": {group:
tensor}, "label": tensor, ...}`` (or ``{"features": tensor, "label": tensor}`` for a linear probe on cached
features), whose training loader's sampler is a :class:`landzoo.store.StoreBatchSampler` (per-rank, seeded
by epoch), and which says how many training patches it holds (:class:`RunData`). Sources here:

* :func:`make_datamodule`: a store's splits (``landzoo fit``, ``benchmark``);
* :class:`BatchDataModule`: any *batch source* per role, i.e. an object with ``__len__`` and
  ``get_batch(indices) -> dict`` (a :class:`Subset` of positions of a store opened under a transfer protocol,
  or :class:`TensorBatches` of tensors already in memory, on the host or on the device).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from landzoo.training.config import Scaling, TrainConfig

__all__ = [
    "BatchDataModule",
    "ResumableLoader",
    "RunData",
    "Subset",
    "TensorBatches",
    "make_datamodule",
    "steps_per_epoch",
]


# ---- sources ------------------------------------------------------------------------------------------
def make_datamodule(
    store: Path,
    *,
    bands: Sequence[str],
    classes: str,
    batch_size: int,
    eval_batch_size: int,
    num_workers: int,
    seed: int,
    mode: str = "mmap",
    splits: tuple[str, str, str] = ("train", "val", "test"),
    drop_last: bool = False,
    copy_threads: int = 2,
    resident: bool | str = False,
    resident_budget: float = 0.7,
    announce: Callable[[str], None] = print,
) -> L.LightningDataModule:
    """The store's DataModule (DDP-aware sampling lives there), for exactly these bands and classes; with
    ``resident`` the fast path of :mod:`.resident` where it applies (decided when the Trainer's device is known)."""
    from landzoo.training.resident import ResidentDataModule

    return ResidentDataModule(
        store,
        resident=resident,
        budget=resident_budget,
        announce=announce,
        bands=tuple(bands),
        classes=classes,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        num_workers=num_workers,
        mode=mode,  # type: ignore[arg-type]
        seed=seed,
        drop_last=drop_last,
        threads=copy_threads,
        train_split=splits[0],
        val_split=splits[1],
        test_split=splits[2],
    )


class Subset:
    """Positions of a batch source (e.g. one label fraction of a split), read with the source's ``get_batch``.

    ``read(positions)`` must return the batch of those positions sorted by position (a store does); the
    positions are kept sorted, so batch row ``i`` is ``positions[indices[i]]`` with ``indices`` sorted too.
    ``labels`` (optional, aligned with ``positions`` as given) are the subset's labels, for the baseline.
    """

    def __init__(
        self,
        read: Callable[[np.ndarray], dict[str, Any]],
        positions: np.ndarray,
        labels: torch.Tensor | None = None,
    ) -> None:
        self.read = read
        positions = np.asarray(positions, dtype=np.int64)
        order = np.argsort(positions, kind="stable")
        self.positions = positions[order]
        self.labels = None if labels is None else labels[torch.from_numpy(order)]

    def __len__(self) -> int:
        return len(self.positions)

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        return self.read(self.positions[np.sort(np.asarray(indices, dtype=np.int64))])


class TensorBatches:
    """Batches gathered from tensors already in memory: ``{key: tensor[N, ...]}``, indexed on their device."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        sizes = {int(t.shape[0]) for t in tensors.values()}
        if len(sizes) != 1:
            raise ValueError(f"tensors of a batch source disagree on their length: {sorted(sizes)}")
        self.tensors = tensors
        self.n = sizes.pop()

    def __len__(self) -> int:
        return self.n

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors["label"]

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> dict[str, Any]:
        idx = torch.as_tensor(np.sort(np.asarray(indices, dtype=np.int64)))
        out = {k: t.index_select(0, idx.to(t.device)) for k, t in self.tensors.items()}
        out["index"] = idx
        return out


class BatchDataModule(L.LightningDataModule):
    """Loaders over one batch source per role (``train``/``val``/``test``), DDP-sharded like the store's.

    ``sources`` maps a role to its source, or to a callable building it at ``setup`` (when the Trainer, its
    device and the LightningModule exist: a linear probe extracts its features there). ``labels`` (optional)
    maps a role to the labels of its whole split, for the best-constant baseline.
    """

    def __init__(
        self,
        sources: dict[str, Any],
        *,
        batch_size: int,
        eval_batch_size: int,
        seed: int,
        num_workers: int = 0,
        drop_last: bool = False,
    ) -> None:
        super().__init__()
        self._sources = dict(sources)
        self.sources: dict[str, Any] = {}
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.drop_last = drop_last

    def source(self, role: str) -> Any:
        if role not in self.sources:
            src = self._sources[role]
            self.sources[role] = src(self) if callable(src) and not hasattr(src, "get_batch") else src
        return self.sources[role]

    def setup(self, stage: str | None = None) -> None:
        roles = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for role in roles.get(stage or "", tuple(self._sources)):
            if role in self._sources:
                self.source(role)

    def _loader(self, role: str, shuffle: bool) -> DataLoader:
        # the store's batch view and sampler serve any source with __len__ and get_batch
        from landzoo.store.reader import StoreBatchSampler, _BatchView, _identity

        src = self.source(role)
        ranks = {"num_replicas": self.trainer.world_size, "rank": self.trainer.global_rank} if self.trainer else {}
        sampler = StoreBatchSampler(
            len(src),
            self.batch_size if role == "train" else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.seed,
            drop_last=self.drop_last if role == "train" else False,
            **ranks,
        )
        workers = self.num_workers if isinstance(src, Subset) else 0  # in-memory tensors: no worker processes
        return DataLoader(
            _BatchView(src),
            sampler=sampler,
            batch_size=None,
            collate_fn=_identity,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def test_labels(self) -> torch.Tensor | None:
        src = self.source("test")
        return getattr(src, "labels", None)


# ---- resumable training epochs ------------------------------------------------------------------------
class ResumableLoader:
    """Wraps the training loader so Lightning can save and restore the position within an epoch.

    ``state_dict`` records how many batches of the current epoch the trainer has consumed (not how many the
    prefetcher pulled); after ``load_state_dict`` the next iteration skips that many batches of the same,
    seed-and-epoch-determined order, so the resumed epoch sees exactly the batches the killed one had left.
    """

    def __init__(self, loader: Any, trainer: L.Trainer) -> None:
        self.loader = loader
        self.trainer = trainer
        self._skip = 0

    def __len__(self) -> int:
        return len(self.loader)

    # Lightning calls ``set_epoch`` on these (via ``_set_sampler_epoch``)
    @property
    def sampler(self) -> Any:
        return getattr(self.loader, "sampler", None)

    @property
    def batch_sampler(self) -> Any:
        return getattr(self.loader, "batch_sampler", None)

    def __iter__(self) -> Any:
        skip, self._skip = self._skip, 0
        iter_from = getattr(self.loader, "iter_from", None)
        if callable(iter_from):  # the resident path starts anywhere in the epoch's plan itself
            yield from iter_from(skip)
            return
        batches = getattr(self.sampler, "batches", None)
        if skip and callable(batches):
            # the sampler knows the epoch's batch order: start after the consumed ones without reading them
            rest = [b.tolist() for b in batches()[skip:]]
            yield from DataLoader(
                self.loader.dataset,
                sampler=rest,
                batch_size=None,
                collate_fn=self.loader.collate_fn,
                num_workers=self.loader.num_workers,
                pin_memory=self.loader.pin_memory,
            )
            return
        it = iter(self.loader)
        for _ in range(skip):  # any other loader: read and drop the consumed batches
            next(it)
        yield from it

    def state_dict(self) -> dict[str, int]:
        progress = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(self.trainer.current_epoch), "consumed": int(progress.ready)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        # Lightning creates the resumed epoch's iterator before it calls set_epoch, so set the epoch here
        epoch, consumed = int(state.get("epoch", 0)), int(state.get("consumed", 0))
        finished = consumed >= len(self.loader)
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch + 1 if finished else epoch)
        self._skip = 0 if finished else consumed


class RunData(L.LightningDataModule):
    """A DataModule as the engine runs it: its training loader wrapped in :class:`ResumableLoader`.

    ``n_train``: training patches of the whole split (all ranks), from which the engine derives the optimiser
    steps per epoch before any loader exists (the lr schedule needs them at ``configure_optimizers``).
    """

    def __init__(self, inner: L.LightningDataModule, n_train: int) -> None:
        super().__init__()
        self.inner = inner
        self.n_train = int(n_train)

    def setup(self, stage: str) -> None:
        self.inner.trainer = self.trainer
        self.inner.setup(stage)

    def train_dataloader(self) -> Any:
        return ResumableLoader(self.inner.train_dataloader(), self.trainer)

    def val_dataloader(self) -> Any:
        return self.inner.val_dataloader()

    def test_dataloader(self) -> Any:
        return self.inner.test_dataloader()

    def predict_dataloader(self) -> Any:
        return self.inner.predict_dataloader()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.inner.load_state_dict(state_dict)

    def teardown(self, stage: str) -> None:
        self.inner.teardown(stage)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return self.inner.transfer_batch_to_device(batch, device, dataloader_idx)

    def test_labels(self) -> torch.Tensor | None:
        """All labels of the test split (every rank's source holds the whole split)."""
        own = getattr(self.inner, "test_labels", None)
        if callable(own):
            labels = own()
            return None if labels is None else labels.cpu()
        ds = getattr(self.inner, "datasets", {}).get("test")
        return None if ds is None else ds.labels.cpu()


def steps_per_epoch(n_train: int, cfg: TrainConfig, scaling: Scaling) -> int:
    """Optimiser steps per epoch per rank, from the split size (not ``estimated_stepping_batches``, which makes
    Lightning build the training iterator before a checkpoint is restored and so breaks mid-epoch resume)."""
    from landzoo.store.reader import StoreBatchSampler

    batches = len(
        StoreBatchSampler(
            n_train,
            scaling.per_device_batch,
            num_replicas=scaling.world_size,
            rank=0,
            shuffle=False,
            drop_last=cfg.data.drop_last,
        )
    )
    return max(1, math.ceil(batches / scaling.accumulate))
