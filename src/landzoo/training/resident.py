"""The fast data path (``data.resident``): splits held where the model trains, batches gathered there.

On one device each split's native band groups (uint16, at their native resolutions) are loaded once into
device memory, or into page-locked host memory when a split exceeds ``data.resident_budget`` of the free
device memory (a log line says which and why); a batch is then one gather by index, with no loader workers
and no per-batch host copy. The batches, their order and their contents are those of the store loader
(:func:`landzoo.store.reader.batch_plan`, the same seed and epoch), so the two paths train the same weights.

Under DDP a rank holds only the patches it reads: at the start of each epoch it stages its part of the
epoch (one ``1 / world`` share of the split, in the order of its batches) from the memory-mapped store into
device memory, while the previous epoch's share is released; the next epoch's share is read from the store
in a background (daemon) thread during the current epoch, so the steps do not wait for it. The page cache,
which all ranks of a node share, holds the store once.

Where neither the device nor the host's available memory can hold a split, the split is read through the
store loader, with a line saying so.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
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
    """Where a split is held: ``device`` (GPU memory), ``pinned`` (page-locked host memory), ``host`` (host memory,
    training on the CPU) or ``loader`` (neither fits: the store loader reads it)."""

    where: str
    reason: str


def resident_wanted(setting: bool | str, device: torch.device) -> bool:
    """``data.resident`` for a run on ``device``: ``auto`` is the resident path on CUDA, the loader elsewhere."""
    return setting is True or (setting == "auto" and device.type == "cuda")


def available_host_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (None where unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def free_device_bytes(device: torch.device) -> int:
    """Free memory of a CUDA device, counting what torch's allocator caches but no tensor uses (released first)."""
    gc.collect()  # tensors of an earlier run (a benchmark's previous model) that only a cycle still holds
    torch.cuda.empty_cache()
    return int(torch.cuda.mem_get_info(device)[0])


def plan_residence(
    nbytes: int,
    device: torch.device,
    *,
    budget: float,
    what: str,
    free_bytes: int | None = None,
    host_bytes: int | None = None,
    reserved: int = 0,
) -> Residence:
    """Where ``nbytes`` of a split go: the device if they fit in ``budget`` x its free memory (less ``reserved``,
    already promised to other splits), else pinned host memory if the host has them available, else the loader."""
    size = f"{what} ({nbytes / _GB:.2f} GB)"
    host = available_host_bytes() if host_bytes is None else host_bytes
    if device.type != "cuda":
        if host is not None and nbytes > budget * host:
            return Residence(
                "loader",
                f"{size} exceeds data.resident_budget {budget:g} x {host / _GB:.1f} GB available host memory: "
                "read through the store loader",
            )
        return Residence("host", f"{size} held in host memory: the run trains on the {device.type}")
    free = (free_device_bytes(device) if free_bytes is None else int(free_bytes)) - reserved
    limit = budget * max(0, free)
    if nbytes <= limit:
        return Residence("device", f"{size} held in {device} memory ({free / _GB:.1f} GB free)")
    over = (
        f"{size} exceeds data.resident_budget {budget:g} x {free / _GB:.1f} GB free on {device} = {limit / _GB:.1f} GB"
    )
    if host is not None and nbytes > budget * host:
        return Residence(
            "loader", f"{over}, and the host has {host / _GB:.1f} GB available: read through the store loader"
        )
    return Residence(
        "pinned", f"{over}: held in pinned host memory, each batch gathered there and copied asynchronously"
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


class _Prefetch:
    """One call of ``fn(cancel)`` in a daemon thread (it never holds up the interpreter's exit, e.g. after a
    SIGTERM); ``stop`` asks it to give up between batches and waits for it."""

    def __init__(self, fn: Callable[[threading.Event], Any]) -> None:
        self.cancel = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True, name="landzoo-stage")
        self.thread.start()

    def _run(self, fn: Callable[[threading.Event], Any]) -> None:
        try:
            self.result = fn(self.cancel)
        except BaseException as err:  # handed to the caller of get()
            self.error = err

    def get(self) -> Any:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    def stop(self) -> None:
        self.cancel.set()
        self.thread.join()


class StagedLoader:
    """Under DDP: each epoch's batches of this rank staged at the epoch's start (see the module docstring).

    The staged block holds the rank's batches back to back, each sorted by index like a store batch, so a
    batch is a slice. It lives on ``device`` (a GPU) or on the host, page-locked with ``pin``. The next epoch's
    block is read in a background thread during this one, except after the last epoch.
    """

    batch_sampler = None

    def __init__(
        self, source: StoreDataset, sampler: StoreBatchSampler, device: torch.device, *, pin: bool = False
    ) -> None:
        self.source = source
        self.sampler = sampler
        self.device = device
        self.pin = pin and torch.cuda.is_available()
        self.max_epochs: int | None = None
        self._next: tuple[tuple[int, int], _Prefetch] | None = None
        self._fixed: dict[str, Any] | None = None  # an unshuffled plan is the same every epoch: staged once

    def __len__(self) -> int:
        return len(self.sampler)

    def _stage(self, epoch: int, skip: int, cancel: threading.Event | None = None) -> dict[str, Any] | None:
        """Read batches ``skip:`` of ``epoch`` from the store into one block, filled in place batch by batch
        (the host holds the share once), then onto the device; None if ``cancel`` was set meanwhile."""
        batches = [np.sort(b) for b in self.sampler.batches(epoch)[skip:]]
        bounds = np.cumsum([0] + [len(b) for b in batches])
        n, pin = int(bounds[-1]), self.pin or self.device.type == "cuda"
        image = {
            g: torch.empty((n, *shape), dtype=dtype, pin_memory=pin) for g, (shape, dtype) in self.source.layout.items()
        }
        label = torch.empty((n, len(self.source.classes)), dtype=torch.float32, pin_memory=pin)
        index = torch.empty(n, dtype=torch.int64)
        ids: list[str] = []
        for k, b in enumerate(batches):
            if cancel is not None and cancel.is_set():
                return None
            part, a, z = self.source.get_batch(b), int(bounds[k]), int(bounds[k + 1])
            for g, t in part["image"].items():
                image[g][a:z].copy_(t)
            label[a:z].copy_(part["label"])
            index[a:z].copy_(part["index"])
            ids += part["id"]
        if self.device.type == "cuda":
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
                staged = ahead[1].get()
                block = staged if ahead[0] == (epoch, skip) else None
            if block is None:
                block = self._stage(epoch, skip)
            if self.max_epochs is None or epoch + 1 < self.max_epochs:
                self._next = ((epoch + 1, 0), _Prefetch(lambda cancel, e=epoch + 1: self._stage(e, 0, cancel)))
            first = 0
        assert block is not None
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
        """Stop reading ahead and drop the staged blocks."""
        if self._next is not None:
            self._next[1].stop()
        self._next = None
        self._fixed = None


class ResidentDataModule(StoreDataModule):
    """The store's DataModule with the resident path (``data.resident``); the store loader where it is off.

    Decided at ``setup``, when the Trainer's device and world size are known; ``announce`` gets one line per
    split saying where it is held and why. ``residence`` records it per role, for the run's cost record.
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
        self._planned: dict[str, int] = {}  # device bytes promised to each role's staging (DDP)

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

    def _mmap_dataset(self, role: str) -> StoreDataset:
        return StoreDataset(
            self.store,
            self.split_names[role],
            bands=self.bands,
            classes=self.classes,
            verify=self.verify,
            threads=self.threads,
        )

    def _dataset(self, role: str) -> StoreDataset:
        if role in self.datasets or not self.active:
            return super()._dataset(role)
        if self._world > 1:  # the staging reads the memory-mapped store (whatever data.mode says)
            self.datasets[role] = self._mmap_dataset(role)
            return self.datasets[role]
        device = self._device
        probe = self._mmap_dataset(role)
        res = plan_residence(probe.nbytes, device, budget=self.budget, what=f"{self.split_names[role]} split")
        self.residence[role] = res.where
        self._say(f"data.resident: {res.reason}")
        if res.where == "loader":
            self.datasets[role] = probe
            return probe
        self.datasets[role] = StoreDataset(
            self.store,
            self.split_names[role],
            bands=self.bands,
            classes=self.classes,
            mode="device" if res.where == "device" else "ram",
            device=device if res.where == "device" else None,
            verify=self.verify,
            threads=self.threads,
            pin_memory=res.where == "pinned",
        )
        return self.datasets[role]

    def _loader(self, role: str, shuffle: bool) -> Any:
        if not self.active:
            return super()._loader(role, shuffle)
        ds = self._dataset(role)
        if self.residence.get(role) in ("loader", "staged:loader"):  # decided once, said once
            return super()._loader(role, shuffle)
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
            share = ds.nbytes * (2 if shuffle else 1) // self._world
            others = sum(v for k, v in self._planned.items() if k != role)
            res = plan_residence(
                share, self._device, budget=self.budget, what=f"this rank's share of {ds.split}", reserved=others
            )
            self._say(f"data.resident: staged per epoch under DDP; {res.reason}")
            self.residence[role] = f"staged:{res.where}"
            if res.where == "loader":
                return super()._loader(role, shuffle)
            on_device = res.where == "device"
            self._planned[role] = share if on_device else 0
            self._staged[role] = StagedLoader(
                ds, sampler, self._device if on_device else torch.device("cpu"), pin=res.where == "pinned"
            )
        staged = self._staged[role]
        staged.sampler = sampler
        staged.max_epochs = self.trainer.max_epochs if self.trainer is not None else None
        return staged

    def teardown(self, stage: str | None = None) -> None:
        """After ``fit``: the training and validation splits' memory is released now (Lightning keeps the loaders
        referenced), before the test split is loaded. The test split stays for the cost measurement after it."""
        roles = ("train", "val") if stage == "fit" else ()
        for role in roles:
            staged = self._staged.pop(role, None)
            if staged is not None:
                staged.close()
            self._planned.pop(role, None)
            ds = self.datasets.pop(role, None)
            if ds is not None and self.active:
                ds.unload()
        super().teardown(stage)

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
