"""The resident data path (``data.resident``): the same batches, in the same order, as the store loader, so the
same weights bit for bit on the CPU; resume mid-epoch; where a split is held and the line saying why."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from _train_helpers import MODEL, overrides, results, same_end

from _faults import FaultAt, inject
from landzoo.cli import main
from landzoo.store.reader import StoreDataset
from landzoo.training import run as run_mod
from landzoo.training.resident import ResidentDataModule, plan_residence, resident_wanted

pytestmark = pytest.mark.slow

# the paper protocol on the CPU, with the dihedral augmentation drawn on the device side of the step
EXTRA = {"data.batch_size": 8, "augment": "dihedral", "trainer.checkpoint_every_n_steps": 2, "cost.measure": "false"}


@pytest.fixture(scope="module")
def loader_run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loader")
    assert main(["fit", "--no-progress", *overrides(store, out, **EXTRA, **{"data.resident": "false"})]) == 0
    return out / MODEL


@pytest.fixture(scope="module")
def resident_run(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("resident")
    assert main(["fit", "--no-progress", *overrides(store, out, **EXTRA, **{"data.resident": "true"})]) == 0
    return out / MODEL


def test_resident_path_trains_the_loaders_weights_bit_for_bit(loader_run: Path, resident_run: Path) -> None:
    same_end(resident_run, loader_run)
    assert results(loader_run)["cost"]["switches"]["data"] == "loader"
    # on the CPU every split is held in host memory; the test split was loaded for the test pass
    assert results(resident_run)["cost"]["switches"]["data"] == "resident:test=host,train=host,val=host"


def test_auto_is_the_loader_on_the_cpu_and_resident_on_cuda() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert not resident_wanted("auto", cpu) and resident_wanted("auto", cuda)
    assert resident_wanted(True, cpu) and not resident_wanted(False, cuda)


def test_resume_mid_epoch_on_the_resident_path(
    store: Path, resident_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = overrides(store, tmp_path, **EXTRA, **{"data.resident": "true"})
    steps = torch.load(resident_run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    per_epoch = steps // 2
    stop_at = per_epoch + per_epoch // 2 + 1  # in the middle of the second epoch
    inject(monkeypatch, run_mod, lambda label: [FaultAt("on_train_batch_end", stop_at, sig=signal.SIGTERM)])
    assert main(["fit", "--no-progress", *args]) == 143
    ckpt = torch.load(tmp_path / MODEL / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == stop_at and stop_at % per_epoch != 0  # saved mid-epoch
    inject(monkeypatch, run_mod, lambda label: [])
    assert main(["fit", "--no-progress", "--resume", *args]) == 0
    same_end(tmp_path / MODEL, resident_run)


def test_plan_residence_says_where_and_why() -> None:
    cuda, cpu, gb = torch.device("cuda", 0), torch.device("cpu"), int(1e9)
    fits = plan_residence(5 * gb, cuda, budget=0.7, what="train split", free_bytes=10 * gb, host_bytes=64 * gb)
    assert fits.where == "device" and fits.reason == "train split (5.00 GB) held in cuda:0 memory (10.0 GB free)"
    over = plan_residence(43 * gb, cuda, budget=0.7, what="train split", free_bytes=40 * gb, host_bytes=128 * gb)
    assert over.where == "pinned"
    assert over.reason.startswith("train split (43.00 GB) exceeds data.resident_budget 0.7 x 40.0 GB free on cuda:0")
    assert "28.0 GB: held in pinned host memory" in over.reason
    # memory promised to another split (DDP staging) is not free
    taken = plan_residence(
        5 * gb, cuda, budget=0.7, what="val", free_bytes=10 * gb, host_bytes=64 * gb, reserved=4 * gb
    )
    assert taken.where == "pinned" and "0.7 x 6.0 GB free" in taken.reason
    neither = plan_residence(43 * gb, cuda, budget=0.7, what="train split", free_bytes=40 * gb, host_bytes=32 * gb)
    assert neither.where == "loader" and neither.reason.endswith(
        "and the host has 32.0 GB available: read through the store loader"
    )
    on_cpu = plan_residence(43 * gb, cpu, budget=0.7, what="val split", host_bytes=128 * gb)
    assert on_cpu.where == "host" and "the run trains on the cpu" in on_cpu.reason
    too_big = plan_residence(43 * gb, cpu, budget=0.7, what="val split", host_bytes=32 * gb)
    assert (
        too_big.where == "loader" and "32.0 GB available host memory: read through the store loader" in too_big.reason
    )


def test_a_split_over_the_budget_is_held_in_pinned_memory_with_the_line(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DataModule's side of the fallback: the split is preloaded in (page-locked, where CUDA exists) host
    memory, gathered there, and the line names the budget, the free memory and the decision."""
    import landzoo.training.resident as resident

    def over_budget(nbytes: int, device: torch.device, **kw: object) -> resident.Residence:
        return plan_residence(nbytes, torch.device("cuda", 0), free_bytes=nbytes, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(resident, "plan_residence", over_budget)
    lines: list[str] = []
    dm = ResidentDataModule(store, bands="s2_10m_20m", classes="ben19", batch_size=8, resident=True,
                            budget=0.5, announce=lines.append)  # fmt: skip
    ds = dm._dataset("train")
    plain = StoreDataset(store, "train", bands="s2_10m_20m", classes="ben19")
    nbytes = plain.nbytes
    assert nbytes == len(plain) * (4 * 120 * 120 + 6 * 60 * 60) * 2  # uint16 10 m and 20 m groups, native sizes
    assert dm.residence == {"train": "pinned"} and ds.mode == "ram" and ds._data is not None
    assert lines == [
        f"data.resident: train split ({nbytes / 1e9:.2f} GB) exceeds data.resident_budget 0.5 x "
        f"{nbytes / 1e9:.1f} GB free on cuda:0 = {nbytes / 2e9:.1f} GB: held in pinned host memory, each batch "
        "gathered there and copied asynchronously"
    ]
    # its batches are the store's, in the sampler's order
    for got, want in zip(dm.train_dataloader(), plain.loader(8, shuffle=True, seed=dm.seed), strict=True):
        assert np.array_equal(got["index"].numpy(), want["index"].numpy())
        for g in want["image"]:
            assert torch.equal(got["image"][g], want["image"][g])


def test_a_model_that_fails_to_compile_trains_eagerly_with_a_line(
    store: Path, loader_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """torch.compile's errors show at the first call of the compiled model: the run says so and goes on eagerly,
    with the eager run's weights; the switches in the cost record say what took effect."""

    from torch._dynamo.exc import TorchDynamoException

    def broken_compile(model: torch.nn.Module, **kw: object) -> object:
        def call(*args: object) -> object:
            raise TorchDynamoException("backend 'inductor' failed: no C++ compiler\nmore detail")

        return call

    monkeypatch.setattr(torch, "compile", broken_compile)
    args = overrides(store, tmp_path, **EXTRA, **{"data.resident": "false", "trainer.compile": "reduce-overhead"})
    assert main(["fit", "--no-progress", *args]) == 0
    out = capsys.readouterr().out
    why = "TorchDynamoException: backend 'inductor' failed: no C++ compiler"
    assert out.count(f"torch.compile failed for {MODEL} ({why}); training eagerly") == 1
    same_end(tmp_path / MODEL, loader_run)
    switches = results(tmp_path / MODEL)["cost"]["switches"]
    assert switches == {
        "data": "loader",
        "compile": f"failed ({why})",
        "channels_last": False,
        "fused_optimizer": False,
    }


@pytest.mark.parametrize(
    ("setting", "name", "fused"), [("auto", "adamw", False), (True, "adam", True), (True, "sgd", False)]
)
def test_fused_optimizer_switch(setting: bool | str, name: str, fused: bool) -> None:
    """``optim.fused``: ``auto`` is torch's default loop off CUDA (the fused CPU kernel rounds differently, and
    the paper protocol's CPU weights stay those of the loader tests); ``true`` fuses Adam/AdamW anywhere."""
    from types import SimpleNamespace

    from landzoo.training.config import TrainConfig, resolve_scaling
    from landzoo.training.module import LandCoverModule

    cfg = TrainConfig.from_dict({"model": {"name": MODEL}, "optim": {"name": name, "fused": setting}})
    module = LandCoverModule(cfg.to_dict(), resolve_scaling(cfg, 1).__dict__, None)
    module._trainer = SimpleNamespace(max_epochs=1)  # type: ignore[assignment]
    module.steps_per_epoch = 10
    opt = module.configure_optimizers()["optimizer"]
    assert bool(opt.defaults.get("fused")) is fused and module.fast_path["fused_optimizer"] is fused


def test_an_error_of_the_compiled_model_itself_is_not_taken_for_a_compile_failure() -> None:
    """Only compiler errors fall back to eager; the model's own error (here a shape error) raises as itself."""
    from landzoo.training.config import TrainConfig, resolve_scaling
    from landzoo.training.module import LandCoverModule

    cfg = TrainConfig.from_dict({"model": {"name": MODEL}, "trainer": {"compile": True}})
    module = LandCoverModule(cfg.to_dict(), resolve_scaling(cfg, 1).__dict__, None)

    def compiled(x: torch.Tensor) -> torch.Tensor:
        raise ValueError("mat1 and mat2 shapes cannot be multiplied")

    module._compiled.append(compiled)
    module.fast_path["compile"] = "default"
    with pytest.raises(ValueError, match="cannot be multiplied"):
        module._run(torch.zeros(1, 10, 120, 120))
    assert module._compiled and module.fast_path["compile"] == "default"  # still compiled
