"""Helpers of the training tests (a module with a unique name, importable from the test files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: A small zoo model without BatchNorm or dropout (LayerNorm is per sample), so 1 and 2 processes agree.
MODEL = "mixer_tiny_p12_120"


def overrides(store: Path, out: Path, **extra: Any) -> list[str]:
    """Command-line overrides of a small, fast run of :data:`MODEL` on ``store``."""
    base = {
        "model.name": MODEL,
        "data.store": str(store),
        "data.batch_size": 16,
        "data.num_workers": 0,
        "out": str(out),
        "trainer.epochs": 2,
        "trainer.accelerator": "cpu",
        "trainer.log_every_n_steps": 5,
        "optim.lr": 2e-3,
        "optim.lr_scaling": "none",
        "cost.model_only_batches": 2,
        "cost.warmup_batches": 1,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def landzoo(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen:
    """``python -m landzoo ARGS`` in a subprocess (what a cluster job runs).

    The child runs single-threaded like the tests (conftest.py), so its float sums match an in-process run.
    """
    e = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "landzoo", *args],
        cwd=REPO,
        env=e,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


def results(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def same_end(run: Path, reference: Path) -> None:
    """A resumed run ends with the uninterrupted run's weights, selection and metrics, bit for bit."""
    import torch

    a = torch.load(reference / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    ra, rb = results(reference), results(run)
    assert ra["best_epoch"] == rb["best_epoch"]
    for key in ("f1_micro", "f1_macro", "map_macro", "hamming_loss"):
        assert ra["test"][key] == rb["test"][key], key
        assert ra["val"][key] == rb["val"][key], key
