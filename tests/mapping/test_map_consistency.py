"""The core promise: a patch cut from the scene on the window grid gets from `landzoo predict` what `map` gives it.

The windows are cut out of the product's JP2 files by direct rasterio reads (not by landzoo's reader), lose the
product's +1000 offset as BigEarthNet stores values, are written as BigEarthNet-v1 patches, encoded into a
store and predicted by the `predict` command. Each must equal the map pixel over it: exactly in float32 and
float16, to the half step in uint8. The same pixels also check the georeferencing: the map's transform and CRS
put map pixel (row, col) over exactly the 120 x 120 (10 m) and 60 x 60 (20 m) pixels the patch was cut from.

Both commands run with batches of one window and contiguous convolutions here. PyTorch's CPU kernels pick their
code path by batch size and memory layout (a GEMM with 3 rows is not blocked like one with 20, a one-sample
Conv1d takes its own path, channels-last convolutions sum in another order), which moves the last bit of a
probability (measured: up to about 1e-6). With equal batches and layout the arithmetic is the same, so any
difference would be in the data: bands, offsets, grouping, normalisation, resampling, grid. A second test bounds
the difference at the commands' defaults (map: channels-last, batches of a window row; predict: batches of 7).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from map_helpers import band_file, outputs, read_all, write_ben_patches
from rasterio.windows import from_bounds

from landzoo import contract
from landzoo.cli import main
from landzoo.synthetic.s2_product import ScenePaths


@pytest.fixture(scope="module")
def maps(scene: ScenePaths, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for dtype in ("float32", "float16", "uint8"):
        folder = tmp_path_factory.mktemp(f"map_{dtype}")
        args = ["map", str(checkpoint), str(scene.safe), "--out", str(folder), "--dtype", dtype, "--no-progress"]
        assert main([*args, "--batch-size", "1", "--memory-format", "contiguous"]) == 0
        out[dtype] = folder
    folder = tmp_path_factory.mktemp("map_default_batches")
    assert main(["map", str(checkpoint), str(scene.safe), "--out", str(folder), "--dtype", "float32"]) == 0
    out["default"] = folder
    return out


@pytest.fixture(scope="module")
def predicted(
    scene: ScenePaths, checkpoint: Path, maps: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[pd.DataFrame, list[tuple[int, int]], pd.DataFrame]:
    """`landzoo predict` on BigEarthNet-v1 patches cut from every scored window of the map (batches of 1 and 7)."""
    from landzoo.store.encode import encode

    probs = read_all(outputs(maps["float32"], scene.product)["probs"])
    cells = [(int(r), int(c)) for r, c in zip(*np.nonzero(~np.isnan(probs[0])), strict=True)]
    assert len(cells) >= 10  # most of the 5 x 5 windows: the nodata corner takes a few
    root = tmp_path_factory.mktemp("ben")
    names = write_ben_patches(scene.safe, root, cells)
    store = tmp_path_factory.mktemp("store") / "store"
    encode("bigearthnet-v1", root, store, workers=1, progress=False)
    frames = []
    for batch in ("1", "7"):
        parquet = tmp_path_factory.mktemp("pred") / "pred.parquet"
        args = ["predict", str(checkpoint), "--data", str(store), "--out", str(parquet), "--accelerator", "cpu"]
        assert main([*args, "--batch-size", batch, "--workers", "0"]) == 0
        frames.append(pd.read_parquet(parquet).set_index("id").loc[names])
    return frames[0], cells, frames[1]


def test_float32_map_equals_predict_exactly(scene: ScenePaths, maps: dict[str, Path], predicted) -> None:
    frame, cells, _ = predicted
    probs = read_all(outputs(maps["float32"], scene.product)["probs"])
    assert list(frame.columns) == list(contract.BEN19)
    for (row, col), (_, expect) in zip(cells, frame.iterrows(), strict=True):
        got = probs[:, row, col]
        assert np.array_equal(got, expect.to_numpy(np.float32)), (row, col, got - expect.to_numpy(np.float32))
    assert probs.dtype == np.float32 and np.nanstd(probs) > 1e-3  # a map that says something


def test_float16_and_uint8_maps_equal_predict_to_their_step(
    scene: ScenePaths, maps: dict[str, Path], predicted
) -> None:
    frame, cells, _ = predicted
    half = read_all(outputs(maps["float16"], scene.product)["probs"])
    byte = read_all(outputs(maps["uint8"], scene.product)["probs"])
    with rasterio.open(outputs(maps["uint8"], scene.product)["probs"]) as ds:
        assert ds.nodata == 255 and all(abs(s - 1 / 250) < 1e-12 for s in ds.scales)
    for (row, col), (_, expect) in zip(cells, frame.iterrows(), strict=True):
        p = expect.to_numpy(np.float32)
        assert np.array_equal(half[:, row, col], p.astype(np.float16).astype(np.float32))
        assert np.array_equal(byte[:, row, col], np.floor(p.astype(np.float64) * 250 + 0.5).astype(np.uint8))
        assert np.all(np.abs(byte[:, row, col] / 250 - p) <= 0.5 / 250 + 1e-7)
    nodata = np.isnan(half[0])
    assert nodata.any() and np.all(byte[:, nodata] == 255)


def test_map_pixels_sit_over_their_windows(scene: ScenePaths, maps: dict[str, Path], predicted) -> None:
    _, cells, _ = predicted
    with rasterio.open(outputs(maps["uint8"], scene.product)["probs"]) as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
        assert ds.descriptions == contract.BEN19
    for band, px in (("B02", 120), ("B05", 60), ("B01", 20)):
        with rasterio.open(band_file(scene.safe, band)) as src:
            assert src.crs == crs and crs.to_epsg() == 32632
            assert (transform.c, transform.f) == (src.transform.c, src.transform.f)
            for row, col in cells:
                left, top = transform.c + col * transform.a, transform.f + row * transform.e
                win = from_bounds(left, top + transform.e, left + transform.a, top, src.transform)
                assert (win.col_off, win.row_off, win.width, win.height) == (col * px, row * px, px, px)
    assert transform.a == 1200 and transform.e == -1200 and shape == (5, 5)


def test_default_batches_differ_from_predict_by_float_rounding_only(
    scene: ScenePaths, maps: dict[str, Path], predicted
) -> None:
    _, cells, frame7 = predicted
    probs = read_all(outputs(maps["default"], scene.product)["probs"])
    diffs = [
        np.abs(probs[:, r, c] - e.to_numpy(np.float32)).max()
        for (r, c), (_, e) in zip(cells, frame7.iterrows(), strict=True)
    ]
    assert max(diffs) <= 5e-6
