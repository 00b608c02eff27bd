"""The fast data path (``data.resident``): splits held where the model trains, batches gathered there.

On one device each split's native band groups (uint16, at their native resolutions) are loaded once into
device memory, or into page-locked host memory when a split exceeds ``data.resident_budget`` of the free
device memory (a log line says which and why); a batch is then one gather by index, with no loader workers
and no per-batch host copy. The batches, their order and their contents are those of the store loader
(:func:`landzoo.store.reader.batch_plan`, the same seed and epoch), so the two paths train the same weights.

Under DDP a rank holds only the patches it reads: at the start of each epoch it stages its part of the
epoch (one ``1 / world`` share of the split, in the order of its batches) from the memory-mapped store into
device memory, while the previous epoch's share is released; the next epoch's share is read from the store
in a background thread during the current epoch, so the steps do not wait for it. The page cache, which all
ranks of a node share, holds the store once.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch

from landzoo.store.datamodule import StoreDataModule
from landzoo.store.reader import StoreBatchSampler, StoreDataset

__all__ = ["Residence", "ResidentDataModule", "ResidentLoader", "plan_residence", "resident_wanted"]

_GB = 1e9


@dataclass(frozen=True)
class Residence:
    """Where a split is held: ``device`` (GPU memory), ``pinned`` (page-locked host memory) or ``host``."""

    where: str
    reason: str


def resident_wanted(setting: bool | str, device: torch.device) -> bool:
    """``data.resident`` for a run on ``device``: ``auto`` is the resident path on CUDA, the loader elsewhere."""
    return setting is True or (setting == "auto" and device.type == "cuda")


def plan_residence(
    nbytes: int, device: torch.device, *, budget: float, what: str, free_bytes: int | None = None
) -> Residence:
    """Decide where ``nbytes`` of a split go: the device if they fit in ``budget`` x its free memory."""
    size = f"{what} ({nbytes / _GB:.2f} GB)"
    if device.type != "cuda":
        return Residence("host", f"{size} held in host memory: the run trains on the {device.type}")
    free = int(torch.cuda.mem_get_info(device)[0]) if free_bytes is None else int(free_bytes)
    limit = budget * free
    if nbytes <= limit:
        return Residence("device", f"{size} held in {device} memory ({free / _GB:.1f} GB free)")
    return Residence(
        "pinned",
        f"{size} exceeds data.resident_budget {budget:g} x {free / _GB:.1f} GB free on {device} = "
        f"{limit / _GB:.1f} GB: held in pinned host memory, each batch gathered there and copied asynchronously",
    )


def split_bytes(ds: StoreDataset) -> int:
    """Bytes of a split's selected band groups at native resolution (what residence costs)."""
    return sum(
        int(np.prod(shape)) * len(ds) * torch.empty(0, dtype=dtype).element_size()
        for shape, dtype in ds.layout.values()
    )


class ResidentLoader:
    """The batches of a :class:`StoreBatchSampler` from a split held whole (``source.get_batch``): an iterable
    with the loader's ``sampler`` (Lightning sets its epoch) and :meth:`iter_from` (resume mid-epoch)."""

    #: Lightning inspects a loader's ``sampler`` and ``batch_sampler``: the sampler here yields whole batches
    batch_sampler = None

    def __init__(self, source: StoreDataset, sampler: StoreBatchSampler) -> None:
        self.source = source
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_from(0)

    def iter_from(self, skip: int) -> Iterator[dict[str, Any]]:
        for batch in self.sampler.batches()[skip:]:
            yield self.source.get_batch(batch)


class StagedLoader:
    """Under DDP: each epoch's batches of this rank staged on ``device`` at the epoch's start (see the module).

    The staged block holds the rank's batches back to back, each sorted by index like a store batch, so a
    batch is a slice. The next epoch's block is read in a background thread during this one.
    """

    batch_sampler = None

    def __init__(self, source: StoreDataset, sampler: StoreBatchSampler, device: torch.device) -> None:
        self.source = source
        self.sampler = sampler
        self.device = device
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="landzoo-stage")
        self._next: tuple[tuple[int, int], Future[dict[str, Any]]] | None = None
        self._fixed: dict[str, Any] | None = None  # an unshuffled plan is the same every epoch: staged once

    def __len__(self) -> int:
        return len(self.sampler)

    def _stage(self, epoch: int, skip: int) -> dict[str, Any]:
        """Read batches ``skip:`` of ``epoch`` from the store into one block (pinned on a GPU host), then to the
        device: the host holds the share once, batch by batch filled in place."""
        batches = [np.sort(b) for b in self.sampler.batches(epoch)[skip:]]
        bounds = np.cumsum([0] + [len(b) for b in batches])
        n, pin = int(bounds[-1]), self.device.type == "cuda"
        image = {
            g: torch.empty((n, *shape), dtype=dtype, pin_memory=pin) for g, (shape, dtype) in self.source.layout.items()
        }
        label = torch.empty((n, len(self.source.classes)), dtype=torch.float32, pin_memory=pin)
        index = torch.empty(n, dtype=torch.int64)
        ids: list[str] = []
        for k, b in enumerate(batches):
            part, a, z = self.source.get_batch(b), int(bounds[k]), int(bounds[k + 1])
            for g, t in part["image"].items():
                image[g][a:z].copy_(t)
            label[a:z].copy_(part["label"])
            index[a:z].copy_(part["index"])
            ids += part["id"]
        if pin:
            image = {g: t.to(self.device, non_blocking=True) for g, t in image.items()}
            label = label.to(self.device, non_blocking=True)
        return {"image": image, "label": label, "index": index, "id": ids, "bounds": bounds}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.iter_from(0)

    def iter_from(self, skip: int) -> Iterator[dict[str, Any]]:
        epoch = self.sampler.epoch
        if not self.sampler.shuffle:
            if self._fixed is None:
                self._fixed = self._stage(epoch, 0)
            block, first = self._fixed, skip
        else:
            ahead, self._next = self._next, None
            block = None
            if ahead is not None:  # always wait for it: the store is never read by two threads at once
                staged = ahead[1].result()
                block = staged if ahead[0] == (epoch, skip) else None
            if block is None:
                block = self._stage(epoch, skip)
            self._next = ((epoch + 1, 0), self._pool.submit(self._stage, epoch + 1, 0))
            first = 0
        bounds = block["bounds"]
        for k in range(first, len(bounds) - 1):
            a, b = int(bounds[k]), int(bounds[k + 1])
            yield {
                "image": {g: t[a:b] for g, t in block["image"].items()},
                "label": block["label"][a:b],
                "index": block["index"][a:b],
                "id": block["id"][a:b],
            }

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._next = None


class ResidentDataModule(StoreDataModule):
    """The store's DataModule with the resident path (``data.resident``); the store loader where it is off.

    Decided at ``setup``, when the Trainer's device and world size are known; ``announce`` gets one line per
    split saying where it is held and why.
    """

    def __init__(
        self, *args: Any, resident: bool | str = "auto", budget: float = 0.7, announce: Any = print, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.resident = resident
        self.budget = budget
        self.announce = announce
        self.residence: dict[str, str] = {}
        self._staged: dict[str, StagedLoader] = {}

    def _say(self, line: str) -> None:
        if self.trainer is None or self.trainer.is_global_zero:
            self.announce(line)

    @property
    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    @property
    def active(self) -> bool:
        return resident_wanted(self.resident, self._device)

    @property
    def _world(self) -> int:
        return self.trainer.world_size if self.trainer is not None else 1

    def _dataset(self, role: str) -> StoreDataset:
        if not self.active or self._world > 1 or role in self.datasets:
            return super()._dataset(role)  # under DDP the store is read (memory-mapped) by the staging
        device = self._device
        probe = StoreDataset(self.store, self.split_names[role], bands=self.bands, classes=self.classes)
        what = f"{self.split_names[role]} split"
        res = plan_residence(split_bytes(probe), device, budget=self.budget, what=what)
        self.residence[role] = res.where
        self._say(f"data.resident: {res.reason}")
        mode = "device" if res.where == "device" else "ram"
        self.datasets[role] = StoreDataset(
            self.store,
            self.split_names[role],
            bands=self.bands,
            classes=self.classes,
            mode=mode,  # type: ignore[arg-type]
            device=device if mode == "device" else None,
            verify=self.verify,
            threads=self.threads,
            pin_memory=res.where == "pinned",
        )
        return self.datasets[role]

    def _loader(self, role: str, shuffle: bool) -> Any:
        if not self.active:
            return super()._loader(role, shuffle)
        ds = self._dataset(role)
        sampler = StoreBatchSampler(
            len(ds),
            self.batch_size if role == "train" else self.eval_batch_size,
            shuffle=shuffle,
            seed=self.seed,
            drop_last=self.drop_last if role == "train" else False,
            **self._ranks(),
        )
        if self._world == 1:
            return ResidentLoader(ds, sampler)
        if role not in self._staged:
            share = split_bytes(ds) * (2 if shuffle else 1) // self._world
            where = plan_residence(share, self._device, budget=self.budget, what=f"this rank's share of {ds.split}")
            self._say(f"data.resident: staged per epoch under DDP; {where.reason}")
            self.residence[role] = f"staged:{where.where}"
            self._staged[role] = StagedLoader(
                ds, sampler, self._device if where.where == "device" else torch.device("cpu")
            )
        staged = self._staged[role]
        staged.sampler = sampler
        return staged

    def teardown(self, stage: str | None = None) -> None:
        for loader in self._staged.values():
            loader.close()
        self._staged.clear()
        super().teardown(stage)
        if self.active and self._world == 1 and stage == "fit":
            for role in ("train", "val"):  # release the resident tensors before the test split is loaded
                self.datasets.pop(role, None)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Images and labels to the device (a no-op where they are resident; from pinned memory, queued);
        ``index`` and ``id`` stay on the host, where only prediction reads them."""
        return {
            "image": {g: t.to(device, non_blocking=True) for g, t in batch["image"].items()},
            "label": batch["label"].to(device, non_blocking=True),
            "index": batch["index"],
            "id": batch["id"],
        }


def describe(dm: L.LightningDataModule) -> str:
    """The data path of a run, for its cost record: ``loader`` or ``resident:<where per split>``."""
    residence = getattr(dm, "residence", None)
    if not residence:
        return "loader"
    return "resident:" + ",".join(f"{role}={where}" for role, where in sorted(residence.items()))
