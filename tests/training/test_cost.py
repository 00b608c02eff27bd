"""Cost measurement: parameter and MAC counts against hand computation; validation excluded from training time."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from landzoo.training import cost


def test_parameters_count_only_trainable() -> None:
    m = nn.Sequential(nn.Conv2d(10, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 19))
    m[1].weight.requires_grad_(False)
    expected = (10 * 8 * 9 + 8) + 8 + (8 * 19 + 19)  # conv, BN bias only, linear
    assert cost.count_parameters(m) == expected


def test_macs_of_conv_and_linear_by_hand() -> None:
    m = nn.Sequential(
        nn.Conv2d(10, 8, 3, padding=1, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 19)
    )
    macs = cost.count_macs(m, torch.zeros(1, 10, 60, 60))
    assert macs == 60 * 60 * 8 * 10 * 9 + 8 * 19
    assert m.training  # restored


class _Rand(Dataset):
    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"x": torch.randn(4, generator=g), "label": torch.ones(2)}


class _Slow(L.LightningModule):
    """Validation sleeps 0.3 s per batch: the training time must not contain it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def training_step(self, batch, i):
        return self.lin(batch["x"]).pow(2).mean()

    def validation_step(self, batch, i):
        time.sleep(0.3)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_training_time_excludes_validation() -> None:
    cb = cost.CostCallback()
    trainer = L.Trainer(
        max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[cb],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit(_Slow(), DataLoader(_Rand(), batch_size=4), DataLoader(_Rand(), batch_size=8))
    wall = time.perf_counter() - t0
    s = cb.summary(trainer)
    assert s["epochs_timed"] == 2 and s["train_images"] == 32
    # 2 epochs x 2 validation batches x 0.3 s = 1.2 s of validation that must not be counted
    assert s["train_time_s"] < wall - 1.1
    assert s["train_time_s"] < 1.0
    assert s["train_img_s"] == pytest.approx(32 / s["train_time_s"])
    assert s["peak_mem_bytes"] > 0 and s["peak_mem_kind"] == "cpu_rss"


def test_model_only_timer_counts_images() -> None:
    lin = nn.Linear(4, 2)
    batches = [torch.zeros(5, 4), torch.zeros(3, 4)]
    r = cost.time_model_only(lin, batches, torch.device("cpu"), warmup=1, timed=4, batch_size=len)
    assert r["images"] == 5 + 3 + 5 + 3 and r["img_s"] > 0


def test_environment_names_hardware_and_versions() -> None:
    env = cost.environment_info("cpu")
    assert env["hardware"].startswith("CPU:") and "logical cores" in env["hardware"]
    for key in ("python", "torch", "lightning", "timm", "landzoo"):
        assert env[key]
