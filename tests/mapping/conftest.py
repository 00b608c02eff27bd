"""Shared mapping fixtures: two tiny synthetic L2A scenes (baselines 05.10 and 02.14) and a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from map_helpers import make_checkpoint

from landzoo.synthetic.s2_product import ScenePaths, generate_s2_scene


@pytest.fixture(scope="session")
def scene(tmp_path_factory: pytest.TempPathFactory) -> ScenePaths:
    """6 km x 6 km (5 x 5 windows), baseline 05.10 (+1000 in every value), clouds, a nodata corner, and its zip."""
    out = tmp_path_factory.mktemp("scene")
    return generate_s2_scene(
        out, size_km=6.0, seed=1, clouds=0.12, nodata_corner=0.1, zip_product=True, workers=1, progress=False
    )


@pytest.fixture(scope="session")
def old_scene(tmp_path_factory: pytest.TempPathFactory) -> ScenePaths:
    """The same scene as a baseline 02.14 product: values without the offset, no BOA_ADD_OFFSET in the metadata."""
    out = tmp_path_factory.mktemp("scene_old")
    return generate_s2_scene(
        out, size_km=6.0, seed=1, clouds=0.12, nodata_corner=0.1, baseline="02.14", tif=False, workers=1,
        progress=False,
    )  # fmt: skip


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.safetensors")
