"""Shared inputs of the fault catalogue: a tiny synthetic BigEarthNet-v1 download, its store, a checkpoint.

Everything is session-scoped and built once; a test that damages something works on its own copy
(``_faults.copy_tree``). The checkpoint is an untrained tiny model saved the way ``fit`` saves one: faults in
reading it do not depend on what it learnt.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from _faults import MODEL


@pytest.fixture(scope="session")
def ben_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landzoo.synthetic import generate

    return generate("bigearthnet-v1", tmp_path_factory.mktemp("raw"), patches=40, seed=11, workers=1, progress=False)


@pytest.fixture(scope="session")
def ben_store(ben_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landzoo.store.encode import encode

    out = tmp_path_factory.mktemp("store") / "store"
    encode("bigearthnet-v1", ben_raw, out, workers=1, progress=False, shard_records=8)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.safetensors`` + ``model.json`` of an untrained :data:`MODEL`, as ``fit`` writes them."""
    import torch

    from landzoo import checkpoint
    from landzoo.training.config import TrainConfig
    from landzoo.training.module import LandCoverModule

    torch.manual_seed(0)
    cfg = TrainConfig.from_dict({"model": {"name": MODEL}})
    module = LandCoverModule(cfg.to_dict())
    out = tmp_path_factory.mktemp("ckpt") / "run"
    checkpoint.save_checkpoint(
        out / "model.safetensors",
        module.model.state_dict(),
        module.contract,
        arch=MODEL,
        config=cfg.to_dict(),
        metrics={"test": {"f1_micro": 0.5}},
    )
    return out
