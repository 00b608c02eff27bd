"""Every accepted input gives the same map: .SAFE, its .zip, band COGs (any naming), a multi-band GeoTIFF, old baselines.

The synthetic product stores values as a baseline-05.10 product does (+1000); its 02.14 twin stores the same
scene without the offset. Applying the offset from each product's own MTD_MSIL2A.xml must make the maps equal to
the last bit (float32 output, same batches), and forcing another offset must change them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
from map_helpers import outputs, read_all

from landzoo import contract
from landzoo.mapping.errors import MapError
from landzoo.mapping.run import MapOptions, map_scenes
from landzoo.mapping.sources import open_scene
from landzoo.synthetic.s2_product import ScenePaths

OPTIONS = MapOptions(dtype="float32", quicklook=False, progress=False)


def _map(checkpoint: Path, scene: Path, out: Path, options: MapOptions = OPTIONS) -> tuple[np.ndarray, dict]:
    (summary,) = map_scenes(checkpoint, [scene], out, options, log=lambda _: None)
    stem = summary["scene"]["name"]
    return read_all(outputs(out, stem)["probs"]), summary


@pytest.fixture(scope="module")
def reference(scene: ScenePaths, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, dict]:
    return _map(checkpoint, scene.safe, tmp_path_factory.mktemp("ref"))


def test_zip_and_band_folder_give_the_safe_map(scene: ScenePaths, checkpoint: Path, reference, tmp_path: Path) -> None:
    ref, ref_summary = reference
    assert np.isnan(ref[0]).any() and not np.isnan(ref[0]).all()
    assert ref_summary["scene"]["kind"] == "SAFE"
    assert ref_summary["radiometry"]["offset_added"] == dict.fromkeys(contract.BAND_SELECTIONS["s2_10m_20m"], -1000.0)
    assert "MTD_MSIL2A.xml" in ref_summary["radiometry"]["source"]
    assert ref_summary["scene"]["product"]["processing_baseline"] == "05.10"
    assert scene.zip is not None and scene.tif is not None
    for path, kind in ((scene.zip, "SAFE zip"), (scene.tif, "band folder")):
        probs, summary = _map(checkpoint, path, tmp_path / kind.replace(" ", "_"))
        assert summary["scene"]["kind"] == kind
        assert np.array_equal(probs, ref, equal_nan=True), kind
        assert summary["windows"] == ref_summary["windows"]


def test_band_files_named_three_ways(scene: ScenePaths, checkpoint: Path, reference, tmp_path: Path) -> None:
    """``B02.tif``, ``*_B02.tif`` and ``*_B02_10m.tif`` are all found by band name."""
    ref, _ = reference
    folder = tmp_path / "tile_folder"
    folder.mkdir()
    for i, src in enumerate(sorted(scene.tif.glob("*.tif"))):
        band = src.stem.split("_")[-2]
        name = (f"{band}.tif", f"sentinel2_l2a_{band}.tif", src.name)[i % 3]
        shutil.copy(src, folder / name)
    shutil.copy(scene.tif / "MTD_MSIL2A.xml", folder / "product_metadata.xml")  # as STAC archives name it
    probs, summary = _map(checkpoint, folder, tmp_path / "out")
    assert np.array_equal(probs, ref, equal_nan=True)
    assert summary["scene"]["name"] == "tile_folder"


def _stack(scene: ScenePaths, path: Path, *, describe: bool) -> None:
    """The scene's 10 bands as one 10 m GeoTIFF: 20 m bands repeated 2 x 2 (a resampled stack, as GIS tools make)."""
    bands = contract.BAND_SELECTIONS["s2_10m_20m"]
    arrays = []
    for band in bands:
        (src,) = scene.tif.glob(f"*_{band}_{contract.band(band).gsd_m}m.tif")
        with rasterio.open(src) as ds:
            arr, profile = ds.read(1), ds.profile
        f = contract.band(band).gsd_m // 10
        arrays.append(np.repeat(np.repeat(arr, f, axis=0), f, axis=1))
        if f == 1:
            crs, transform, shape = profile["crs"], profile["transform"], arr.shape
    with rasterio.open(
        path, "w", driver="GTiff", width=shape[1], height=shape[0], count=len(bands), dtype="uint16",
        crs=crs, transform=transform, tiled=True, compress="deflate",
    ) as ds:  # fmt: skip
        ds.write(np.stack(arrays))
        if describe:
            ds.descriptions = bands


def test_multiband_geotiff_with_bands_and_offset(
    scene: ScenePaths, checkpoint: Path, reference, tmp_path: Path
) -> None:
    ref, _ = reference
    named = tmp_path / "stack_named.tif"
    _stack(scene, named, describe=True)
    options = MapOptions(dtype="float32", quicklook=False, progress=False, offset=-1000.0)
    probs, summary = _map(checkpoint, named, tmp_path / "named", options)
    assert np.array_equal(probs, ref, equal_nan=True)
    assert summary["bands"]["B05"]["file_pixels_per_native"] == 2  # averaged onto its 20 m grid on read
    assert summary["radiometry"]["source"] == "--offset -1000 for every band"
    bare = tmp_path / "stack.tif"
    _stack(scene, bare, describe=False)
    with pytest.raises(MapError, match="--bands"):
        open_scene(bare)
    order = replace(options, bands=contract.BAND_SELECTIONS["s2_10m_20m"])
    probs2, _ = _map(checkpoint, bare, tmp_path / "bare", order)
    assert np.array_equal(probs2, ref, equal_nan=True)


def test_pre_0400_baseline_without_offset_gives_the_same_map(
    old_scene: ScenePaths, checkpoint: Path, reference, tmp_path: Path
) -> None:
    ref, _ = reference
    with rasterio.open(next(old_scene.safe.glob("GRANULE/*/IMG_DATA/R10m/*_B02_10m.jp2"))) as ds:
        old_b02 = ds.read(1)
    probs, summary = _map(checkpoint, old_scene.safe, tmp_path)
    assert summary["scene"]["product"]["processing_baseline"] == "02.14"
    assert set(summary["radiometry"]["offset_added"].values()) == {0.0}
    assert "has no BOA_ADD_OFFSET" in summary["radiometry"]["source"]
    assert np.array_equal(probs, ref, equal_nan=True)
    assert 0 < old_b02[old_b02 > 0].min() < 1000  # the values really differ from the 05.10 product's


def test_forced_offset_changes_the_map_and_is_recorded(
    scene: ScenePaths, checkpoint: Path, reference, tmp_path
) -> None:
    ref, _ = reference
    options = MapOptions(dtype="float32", quicklook=False, progress=False, offset=0.0)
    probs, summary = _map(checkpoint, scene.safe, tmp_path, options)
    valid = ~np.isnan(ref)
    assert np.array_equal(np.isnan(probs), ~valid)
    assert np.abs(probs[valid] - ref[valid]).max() > 1e-3
    assert set(summary["radiometry"]["offset_added"].values()) == {0.0}
    assert summary["request"]["offset"] == 0.0
    saved = json.loads((tmp_path / f"{scene.product}_summary.json").read_text())
    assert saved["radiometry"] == summary["radiometry"]


def test_parallel_inference_threads_give_the_same_map(scene: ScenePaths, checkpoint: Path, reference, tmp_path) -> None:
    """Batches of 2 windows in 3 threads (results assembled in order) give the one-thread map; torch's threads restored."""
    import torch

    ref, _ = reference
    before = torch.get_num_threads()
    options = MapOptions(dtype="float32", quicklook=False, progress=False, infer_threads=3, batch_size=2)
    probs, summary = _map(checkpoint, scene.safe, tmp_path, options)
    assert summary["threads"]["inference"] == 3 and summary["threads"]["torch_intra_op"] == 1
    assert torch.get_num_threads() == before
    np.testing.assert_allclose(probs, ref, rtol=0, atol=5e-6)  # other batch sizes: float rounding only
    assert np.array_equal(np.isnan(probs), np.isnan(ref))
    same_batches = MapOptions(dtype="float32", quicklook=False, progress=False, infer_threads=3)
    probs, _ = _map(checkpoint, scene.safe, tmp_path / "same", same_batches)
    assert np.array_equal(probs, ref, equal_nan=True)
