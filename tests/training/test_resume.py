"""Resume and preemption: a run killed mid-epoch (SIGKILL) or preempted (SIGTERM) and resumed with --resume ends
with exactly the weights and metrics of an uninterrupted run with the same seed."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import torch
from _train_helpers import MODEL, landzoo, overrides, same_end

from landzoo.cli import main

pytestmark = pytest.mark.slow

EXTRA = {"data.batch_size": 8, "trainer.checkpoint_every_n_steps": 2, "cost.measure": "false"}


@pytest.fixture(scope="module")
def reference(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    assert main(["fit", "--no-progress", *overrides(store, out, **EXTRA)]) == 0
    return out / MODEL


def _interrupt(store: Path, out: Path, sig: signal.Signals) -> tuple[int, str, dict]:
    """Start a run, wait for its first step checkpoint, send ``sig``; return exit code, output, checkpoint."""
    last = out / MODEL / "checkpoints" / "last.ckpt"
    proc = landzoo("fit", "--no-progress", *overrides(store, out, **EXTRA))
    deadline = time.monotonic() + 240
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted:\n" + proc.communicate()[0][-2000:]
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=240)
    return proc.returncode, output, torch.load(last, map_location="cpu", weights_only=True)


def test_sigkill_mid_epoch_then_resume(store: Path, reference: Path, tmp_path: Path) -> None:
    code, _, ckpt = _interrupt(store, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    steps_per_epoch = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 2
    assert ckpt["global_step"] > 0 and ckpt["global_step"] % steps_per_epoch != 0  # really mid-epoch
    assert main(["fit", "--no-progress", "--resume", *overrides(store, tmp_path, **EXTRA)]) == 0
    same_end(tmp_path / MODEL, reference)


def test_sigterm_saves_a_checkpoint_then_resume(store: Path, reference: Path, tmp_path: Path) -> None:
    code, output, ckpt = _interrupt(store, tmp_path, signal.SIGTERM)
    assert code == 143, output[-2000:]
    assert "SIGTERM: checkpoint saved" in output and "--resume" in output
    total = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 0 < ckpt["global_step"] < total
    assert not (tmp_path / MODEL / "results.json").exists()
    # without --resume the occupied run folder is refused, with it the run completes
    assert main(["fit", "--no-progress", *overrides(store, tmp_path, **EXTRA)]) == 2
    assert main(["fit", "--no-progress", "--resume", *overrides(store, tmp_path, **EXTRA)]) == 0
    same_end(tmp_path / MODEL, reference)
