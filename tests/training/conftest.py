"""A tiny synthetic BigEarthNet-v1 store shared by the training tests, and helpers to train on it."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landzoo.synthetic import generate

    return generate(
        "bigearthnet-v1", tmp_path_factory.mktemp("raw"), patches=240, seed=3, workers=2, progress=False, overwrite=True
    )


@pytest.fixture(scope="session")
def store(raw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landzoo.store.encode import encode

    out = tmp_path_factory.mktemp("store") / "store"
    encode("bigearthnet-v1", raw_dir, out, workers=1, progress=False)
    return out
