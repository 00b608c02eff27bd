"""Transfer runs on the training engine: a fine-tune equals a plain ``landzoo fit`` started from the same weights, and
``landzoo transfer`` on 2 gloo processes gives the test metrics of 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transfer_synth import random_checkpoint, sen12ms_store

from landzoo import contract

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ben(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small synthetic BigEarthNet-v1 store, a random checkpoint of its bands, and its statistics as a file."""
    from landzoo.store.encode import encode
    from landzoo.synthetic import generate

    root = tmp_path_factory.mktemp("ben")
    raw = generate("bigearthnet-v1", root / "raw", patches=120, seed=5, workers=1, progress=False)
    encode("bigearthnet-v1", raw, root / "store", workers=1, progress=False)
    stats = root / "stats.json"
    stats.write_text(json.dumps({b: list(contract.BEN_BAND_STATS[b]) for b in contract.BAND_SELECTIONS["s2_10m_20m"]}))
    return {"store": root / "store", "ckpt": random_checkpoint(root), "stats": stats}


def test_a_transfer_finetune_equals_fit_from_the_same_weights(ben: dict[str, Path], tmp_path: Path) -> None:
    """Same initial weights, data subset (the whole train split), optimiser settings and seed: the same weights."""
    from landzoo.checkpoint import load_checkpoint, save_checkpoint
    from landzoo.training.module import LandCoverModule
    from landzoo.training.run import fit
    from landzoo.training.schema import TrainConfig
    from landzoo.transfer.run import RunSpec, TransferConfig, run_transfer

    cfg = TransferConfig(
        source=str(ben["ckpt"]), dataset="bigearthnet-v1", data=str(ben["store"]), out=str(tmp_path / "transfer"),
        fractions=(1.0,), seeds=(0,), inits=("random",), mode="finetune", epochs=2, min_steps=0, batch_size=16,
        stats=str(ben["stats"]), workers=0,
    )  # fmt: skip
    summary = run_transfer(cfg, progress=False, epoch_lines=False)
    run = summary["runs"][0]
    weights, meta = load_checkpoint(tmp_path / "transfer" / "runs" / "random" / "f1_s0" / "model.safetensors")
    train = meta.config["train"]  # the engine config the sweep ran (transfer protocol + the sweep's options)
    assert train["protocol"] == "transfer" and train["optim"]["name"] == "adamw" and train["augment"] == "dihedral"

    # the random initialisation, rebuilt as the sweep builds it, saved as a checkpoint for fit's model.init_from
    torch.manual_seed(RunSpec("random", 1.0, 0).torch_seed())
    start = LandCoverModule(train, None, {"stats": meta.contract.stats, "native": True}).model
    init = save_checkpoint(tmp_path / "init.safetensors", start.state_dict(), meta.contract, arch=meta.arch,
                           arch_kwargs=meta.arch_kwargs)  # fmt: skip
    fit_cfg = TrainConfig.from_dict(
        {
            **train,
            "out": str(tmp_path / "fit"),
            "name": "same",
            "data": {**train["data"], "store": str(ben["store"])},
            "model": {**train["model"], "init_from": str(init)},
        }
    )
    result = fit(fit_cfg, progress=False, epoch_lines=False)
    fitted, _ = load_checkpoint(tmp_path / "fit" / "same" / "model.safetensors")
    assert result["cost"]["steps"] == run["cost"]["steps"] > 0
    assert set(fitted) == set(weights)
    for key, value in weights.items():
        assert torch.equal(value, fitted[key]), key
    assert result["best_epoch"] == run["val"]["epoch"]
    for key in ("f1_micro", "f1_macro", "map_macro"):
        assert result["test"][key] == run["test"][key], key


def _transfer(store: Path, ckpt: Path, out: Path, devices: int) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    argv = [
        "transfer", "--from", str(ckpt), "--dataset", "sen12ms", "--data", str(store), "--out", str(out),
        "--mode", "linear", "--fractions", "0.05", "--seeds", "0", "--inits", "random", "--epochs", "6",
        "--min-steps", "0", "--batch-size", "32", "--workers", "0", "--device", "cpu", "--devices", str(devices),
        "--no-progress",
    ]  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "landzoo", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


def test_two_gloo_processes_give_the_test_metrics_of_one(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A linear probe (frozen encoder in eval mode, no batch-dependent layer trains): one full batch of 32 per step,
    16 per process, gradients averaged by DDP; the test split is sharded and its metrics synchronised."""
    root = tmp_path_factory.mktemp("ddp")
    store, ckpt = sen12ms_store(root), random_checkpoint(root)
    one, two = _transfer(store, ckpt, root / "one", 1), _transfer(store, ckpt, root / "two", 2)
    assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
    assert two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    a = json.loads((root / "one" / "transfer.json").read_text())["runs"][0]
    b = json.loads((root / "two" / "transfer.json").read_text())["runs"][0]
    assert a["n_train"] == b["n_train"] == 32 and b["scaling"]["world_size"] == 2 and a["scaling"]["world_size"] == 1
    assert b["scaling"]["per_device_batch"] == 16 and b["cost"]["steps"] == a["cost"]["steps"] == 6
    assert a["test"]["num_samples"] == b["test"]["num_samples"] > 0  # every test patch counted once over 2 ranks
    for key, value in a["test"].items():
        assert b["test"][key] == pytest.approx(value, abs=1e-6), key
