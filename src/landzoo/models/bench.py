"""Throughput measurements of zoo models: forward img/s (``landzoo models --bench``) and training-step img/s.

Both time whole batches of random input at the model's input size after warm-up iterations that are not
counted, synchronising the device around the timed loop, under ``torch.inference_mode`` for forward
passes. They measure the network only (no data loading, no resampling stem).

CPU denormals are flushed to zero while timing (``torch.set_flush_denormal``; TensorFlow, the reference's
framework, does the same by default). Untrained networks in eval mode, and the reference's BatchNorm
init (gamma ~ U(-0.05, 0.05)), drive deep activations to ~1e-39, where x86 arithmetic is 5-10x slower:
without the flush the benchmark would time denormal arithmetic, not the architecture.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from landzoo.hardware import cpu_name

__all__ = ["forward_throughput", "hardware_string", "train_step_throughput"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def _flush_denormal() -> Iterator[None]:
    # torch has no getter for the flag; its default is off, which is restored afterwards.
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def forward_throughput(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    *,
    batch: int = 64,
    device: str | torch.device = "cpu",
    warmup: int = 2,
    iters: int = 5,
    min_seconds: float = 0.0,
) -> float:
    """Images per second of ``model(x)`` in eval mode for ``x`` of shape ``[batch, *input_shape]``.

    Runs ``warmup`` untimed batches, then at least ``iters`` timed batches (more until ``min_seconds`` pass).
    """
    device = torch.device(device)
    model = model.to(device).eval()
    x = torch.randn(batch, *input_shape, device=device)
    with torch.inference_mode(), _flush_denormal():
        for _ in range(warmup):
            model(x)
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while n < iters or time.perf_counter() - t0 < min_seconds:
            model(x)
            n += 1
        _sync(device)
        dt = time.perf_counter() - t0
    return n * batch / dt


def train_step_throughput(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    batch: int = 32,
    device: str | torch.device = "cpu",
    warmup: int = 2,
    iters: int = 5,
    lr: float = 1e-4,
) -> float:
    """Images per second of full training steps (forward, BCE-with-logits loss, backward, Adam step)."""
    device = torch.device(device)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x = torch.randn(batch, *input_shape, device=device)
    y = (torch.rand(batch, num_classes, device=device) < 0.2).float()
    loss_fn = nn.BCEWithLogitsLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    with _flush_denormal():
        for _ in range(warmup):
            step()
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            step()
        _sync(device)
        return iters * batch / (time.perf_counter() - t0)


def hardware_string(device: str | torch.device = "cpu") -> dict[str, Any]:
    """Where a number was measured: CPU model and core count (or GPU name), torch threads, versions."""
    device = torch.device(device)
    cpu = cpu_name()
    import os

    import timm

    out: dict[str, Any] = {
        "device": str(device),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out
