"""Shared synthetic data for the transfer tests: SEN12MS and BigEarthNet stores and a pretrained zoo checkpoint.

Everything is built once per test session (memoised here, since several test modules use it): generating and
encoding takes seconds; pretraining the tiny WRN on synthetic BigEarthNet takes about a minute on 2 cores.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

#: The pretrained model: the paper's WRN-10-2, at 32 px so that CPU tests stay fast, PyTorch init.
ARCH = "wrn10_2"
ARCH_KWARGS: dict[str, Any] = {"input_size": 32, "init": "torch"}
S12_PX = 32

_CACHE: dict[str, Path] = {}


def sen12ms_store(root: Path, patches: int = 800) -> Path:
    """Synthetic SEN12MS (32 px patches) encoded into a store (multi-label labels; IGBP fractions in the index)."""
    key = f"s12:{patches}"
    if key not in _CACHE:
        from landzoo.store.encode import encode
        from landzoo.synthetic import generate

        raw = generate("sen12ms", root / "s12-raw", patches=patches, seed=1, patch_px=S12_PX, progress=False)
        encode("sen12ms", raw, root / "s12-store", reader_kwargs={"patch_px": S12_PX}, progress=False, workers=1)
        _CACHE[key] = root / "s12-store"
        _CACHE["s12-raw"] = raw
    return _CACHE[key]


def random_checkpoint(root: Path, bands: str = "s2_10m_20m", name: str = "random") -> Path:
    """An untrained checkpoint with a full data contract (for tests that do not need pretraining)."""
    import torch

    from landzoo import checkpoint as ckpt
    from landzoo.models import create_model

    torch.manual_seed(0)
    model = create_model(ARCH, bands=bands, classes="ben19", **ARCH_KWARGS)
    dc = ckpt.DataContract.from_names(bands, "ben19", model.input_size)
    return ckpt.save_checkpoint(
        root / f"{name}.safetensors", model.state_dict(), dc, arch=ARCH, arch_kwargs=ARCH_KWARGS
    )


def pretrained_checkpoint(root: Path, patches: int = 600, epochs: int = 40, seed: int = 0) -> Path:
    """WRN-10-2 trained on synthetic BigEarthNet v1 (train split, BCE, AdamW one-cycle), saved with its contract."""
    if "zoo" in _CACHE:
        return _CACHE["zoo"]
    import torch

    from landzoo import checkpoint as ckpt
    from landzoo.models import create_model
    from landzoo.store import StoreDataset
    from landzoo.store.encode import encode
    from landzoo.synthetic import generate

    generate("bigearthnet-v1", root / "ben-raw", patches=patches, seed=0, progress=False)
    encode("bigearthnet-v1", root / "ben-raw" / "BigEarthNet-v1.0", root / "ben-store", progress=False, workers=2)
    ds = StoreDataset(root / "ben-store", "train", bands="s2_10m_20m", classes="ben19", mode="ram")
    torch.manual_seed(seed)
    model = create_model(ARCH, bands="s2_10m_20m", classes="ben19", **ARCH_KWARGS)
    bs, lr = 32, 2e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(ds) / bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        perm = rng.permutation(len(ds))
        for i in range(0, len(ds), bs):
            batch = ds.get_batch(perm[i : i + bs])  # native band groups: the model normalises and resamples
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch["image"]), batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    dc = ckpt.DataContract.from_names("s2_10m_20m", "ben19", model.input_size)
    _CACHE["zoo"] = ckpt.save_checkpoint(
        root / "zoo" / "wrn10_2-ben.safetensors", model.state_dict(), dc, arch=ARCH, arch_kwargs=ARCH_KWARGS
    )
    return _CACHE["zoo"]
