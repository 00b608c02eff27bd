"""Two processes (DDP over gloo on CPU) against one: the same metrics on the same weights, and trained weights that
match a one-process run with the same global batch; the resident path under DDP (each rank stages its share
of each epoch) trains the store loader's weights bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _train_helpers import landzoo, overrides, results, same_end

from landzoo.cli import main

pytestmark = pytest.mark.slow

# global batch 16: 8 per process with 2 processes; no lr scaling, so both runs take the same steps; the last,
# incomplete batch is dropped (2 ranks would split it unevenly and weight their halves equally). SGD, because
# Adam's first steps turn float-rounding differences of near-zero gradients into +-lr steps (sign(g) / (|g| + eps)).
EXTRA = {
    "optim.name": "sgd",
    "optim.lr": 0.05,
    "data.batch_size": 16,
    "data.drop_last": "true",
    "optim.lr_scaling": "none",
    "trainer.epochs": 2,
    "cost.measure": "false",
}


@pytest.fixture(scope="module")
def runs(store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("ddp")
    proc = landzoo(
        "fit", "--no-progress",
        *overrides(store, out, name="two", **EXTRA, **{"trainer.devices": 2, "trainer.strategy": "ddp"}),
    )  # fmt: skip
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    assert main(["fit", "--no-progress", *overrides(store, out, name="one", **EXTRA)]) == 0
    return out / "two", out / "one"


def test_two_processes_split_the_global_batch(runs: tuple[Path, Path], store: Path) -> None:
    two, one = runs
    s2, s1 = results(two)["scaling"], results(one)["scaling"]
    assert (s2["world_size"], s2["per_device_batch"], s2["global_batch"]) == (2, 8, 16)
    assert (s1["world_size"], s1["per_device_batch"], s1["global_batch"]) == (1, 16, 16)
    assert s2["lr_effective"] == s1["lr_effective"]
    # both ranks' test shards together are the whole test split: counted once each
    assert results(two)["test_patches"] == results(one)["test_patches"] == results(two)["test"]["num_samples"]


def test_metrics_of_two_processes_equal_one_process_on_the_same_weights(
    runs: tuple[Path, Path], store: Path, tmp_path: Path
) -> None:
    two, _ = runs
    out = tmp_path / "one_process.json"
    assert main(["test", str(two), "--data", str(store), "--out", str(out)]) == 0
    single = json.loads(out.read_text())["metrics"]
    distributed = results(two)["test"]
    for key, value in distributed.items():
        assert single[key] == pytest.approx(value, abs=1e-6), key


def test_weights_match_a_one_process_run_with_the_same_global_batch(runs: tuple[Path, Path]) -> None:
    two, one = runs
    a = torch.load(two / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(one / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] > 0
    worst = 0.0
    for key, wa in a["state_dict"].items():
        wb = b["state_dict"][key]
        if wa.is_floating_point():
            worst = max(worst, float((wa - wb).abs().max()))
    assert worst < 1e-5, f"largest weight difference {worst}"


def test_resident_path_under_ddp_trains_the_loaders_weights(
    runs: tuple[Path, Path], store: Path, tmp_path: Path
) -> None:
    two, _ = runs
    ddp = {"trainer.devices": 2, "trainer.strategy": "ddp", "data.resident": "true"}
    proc = landzoo("fit", "--no-progress", *overrides(store, tmp_path, name="two", **EXTRA, **ddp))
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, output[-3000:]
    assert "data.resident: staged per epoch under DDP; this rank's share of train" in output
    assert output.count("data.resident: staged") == 3  # train, val, test; rank 0 only
    # the same batches on each rank as the loader: the same weights and metrics, which one process reproduces
    # on these weights (test_metrics_of_two_processes_equal_one_process_on_the_same_weights)
    same_end(tmp_path / "two", two)
    assert results(tmp_path / "two")["cost"]["switches"]["data"] == (
        "resident:test=staged:host,train=staged:host,val=staged:host"
    )
