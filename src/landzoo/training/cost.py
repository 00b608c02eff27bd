"""Cost metrics, measured the same way for every model and stored with its results.

Definitions (docs/training.md repeats them):

* ``params``: trainable parameters. ``macs``: multiply-accumulates of one forward pass of one image at the
  model's input resolution, counted by ``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2) on the
  stacked, already-resampled input, so the on-device resampling is not counted.
* ``train_time_s``: wall clock of the training epochs **excluding validation passes** (as the paper's
  "Train took", but globally: the slowest rank's time, synchronised with the device). ``epoch_time_s``: its
  mean per epoch. ``train_img_s``: training images of all ranks / ``train_time_s``.
* ``infer_img_s_model``: forward passes of the model (input stem included) over batches already on the
  device, in eval mode under ``torch.inference_mode`` and the run's precision, warm-up excluded, summed over
  ranks. ``infer_img_s_e2e``: one full pass over the test split from the store to probabilities on the host
  (loader, transfer, normalise/resample, forward, sigmoid, copy back), all ranks' images / the slowest rank's
  wall time. The paper timed rank 0's shard only, with an eager model and its parsing pipeline.
* ``peak_mem_bytes``: ``torch.cuda.max_memory_allocated`` on CUDA (max over ranks); on CPU the process' peak
  resident set since it started (``ru_maxrss``), labelled ``peak_mem_kind`` = ``cpu_rss``, which includes
  Python and data and, in a benchmark of several models in one process, the models run before.
"""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from landzoo.hardware import cpu_name

__all__ = [
    "CostCallback",
    "count_macs",
    "count_parameters",
    "environment_info",
    "git_commit",
    "hardware_string",
    "peak_memory",
    "reset_peak_memory",
    "sync",
    "time_model_only",
]


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the paper's count)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def count_macs(model: nn.Module, example: torch.Tensor | dict[str, torch.Tensor]) -> int:
    """Multiply-accumulates of one forward pass on ``example`` (batch of 1), via FlopCounterMode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2)


def sync(device: torch.device | str | None = None) -> None:
    """Wait for queued device work, so wall-clock timings mean what they say."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)
    elif device is not None and device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> tuple[int, str]:
    """Peak memory in bytes and its kind (``cuda_allocated`` or ``cpu_rss``)."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "cuda_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss * (1 if sys.platform == "darwin" else 1024)), "cpu_rss"


def _all_reduce(value: float, trainer: L.Trainer | None, op: str) -> float:
    """Reduce a host float over ranks (``sum`` or ``max``); a no-op in one process."""
    import torch.distributed as dist

    if trainer is None or trainer.world_size == 1 or not (dist.is_available() and dist.is_initialized()):
        return value
    t = torch.tensor([value], dtype=torch.float64, device=trainer.strategy.root_device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return float(t.item())


class CostCallback(L.Callback):
    """Times training epochs without their validation passes and counts trained images, over all ranks.

    Images join the total when their epoch's time does: an epoch interrupted and resumed counts the images
    and the time after the restart only, so the rate stays right (the part before the kill is not counted).
    """

    def __init__(self) -> None:
        self.epoch_times: list[float] = []
        self.train_images = 0
        self._epoch_images = 0
        self._epoch_start: float | None = None
        self._val_time = 0.0
        self._val_start: float | None = None
        self.peak_mem: tuple[int, str] = (0, "")

    def state_dict(self) -> dict[str, Any]:
        return {"epoch_times": list(self.epoch_times), "train_images": self.train_images}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.epoch_times = list(state_dict.get("epoch_times", []))
        self.train_images = int(state_dict.get("train_images", 0))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        reset_peak_memory(pl_module.device)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sync(pl_module.device)
        self._epoch_start = time.perf_counter()
        self._val_time = 0.0
        self._epoch_images = 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._epoch_images += int(batch["label"].shape[0])

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._epoch_start is None:
            return
        sync(pl_module.device)
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._val_start is not None:
            sync(pl_module.device)
            self._val_time += time.perf_counter() - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._epoch_start is None:
            return
        sync(pl_module.device)
        elapsed = time.perf_counter() - self._epoch_start - self._val_time
        self.epoch_times.append(_all_reduce(elapsed, trainer, "max"))
        self.train_images += self._epoch_images
        self._epoch_images = 0
        self._epoch_start = None
        self.peak_mem = peak_memory(pl_module.device)

    def summary(self, trainer: L.Trainer | None) -> dict[str, Any]:
        """Training cost over all ranks (call on every rank: it all-reduces)."""
        images = _all_reduce(float(self.train_images), trainer, "sum")
        mem, kind = self.peak_mem
        mem = _all_reduce(float(mem), trainer, "max")
        total = float(sum(self.epoch_times))
        return {
            "train_time_s": total,
            "epoch_time_s": total / len(self.epoch_times) if self.epoch_times else None,
            "epochs_timed": len(self.epoch_times),
            "train_images": int(images),
            "train_img_s": images / total if total > 0 else None,
            "peak_mem_bytes": int(mem),
            "peak_mem_kind": kind,
        }


def time_model_only(
    forward: Callable[[Any], torch.Tensor],
    batches: Iterable[Any],
    device: torch.device,
    *,
    warmup: int,
    timed: int,
    batch_size: Callable[[Any], int],
) -> dict[str, float]:
    """img/s of ``forward`` over ``batches`` already on ``device`` (cycled), warm-up excluded."""
    batches = list(batches)
    if not batches:
        return {"img_s": float("nan"), "images": 0, "seconds": 0.0}
    with torch.inference_mode():
        for i in range(warmup):
            forward(batches[i % len(batches)])
        sync(device)
        t0 = time.perf_counter()
        images = 0
        for i in range(timed):
            b = batches[i % len(batches)]
            forward(b)
            images += batch_size(b)
        sync(device)
        seconds = time.perf_counter() - t0
    return {"img_s": images / seconds if seconds > 0 else float("nan"), "images": images, "seconds": seconds}


def git_commit() -> str | None:
    """The landzoo checkout's commit (with ``-dirty``), or None when not running from one.

    Same rule as the checkpoints' (:func:`landzoo.checkpoint.git_commit`), so a run's results and weights agree.
    """
    from landzoo.checkpoint import git_commit as checkout_commit

    sha, dirty = checkout_commit()
    return None if sha is None else (f"{sha}-dirty" if dirty else sha)


def hardware_string(device: torch.device | str | None = None) -> str:
    """One line naming the accelerator (or CPU) and the host's CPU and core count."""
    cpu = f"{cpu_name()} ({os.cpu_count()} logical cores)"
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n} x {torch.cuda.get_device_name(dev)} on {cpu}"
    return f"CPU: {cpu}"


def environment_info(device: torch.device | str | None = None, world_size: int = 1) -> dict[str, Any]:
    """Hardware and software versions stored with every result."""
    import lightning
    import timm
    import torchmetrics

    from landzoo import __version__

    info: dict[str, Any] = {
        "hardware": hardware_string(device),
        "world_size": world_size,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
        "torchmetrics": torchmetrics.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "torch_threads": torch.get_num_threads(),
        "landzoo": __version__,
        "git_commit": git_commit(),
    }
    return info
