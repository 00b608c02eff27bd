"""What `map` writes, checked against independent computations: overlap averaging, nodata, clouds, COGs, summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from map_helpers import outputs, read_all
from rasterio.windows import Window

from landzoo import contract
from landzoo.cli import main
from landzoo.mapping.colours import class_colours
from landzoo.mapping.grid import WindowGrid
from landzoo.mapping.model import load_map_model
from landzoo.mapping.writers import MapWriter
from landzoo.synthetic.s2_product import ScenePaths

CLOUDY = (3, 8, 9, 10)


def _tif(scene: ScenePaths, band: str) -> Path:
    res = 20 if band == "SCL" else contract.band(band).gsd_m
    (path,) = scene.tif.glob(f"*_{band}_{res}m.tif")
    return path


@pytest.fixture(scope="module")
def runs(scene: ScenePaths, checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    common = ["--dtype", "float32", "--no-progress", "--batch-size", "1", "--memory-format", "contiguous"]
    for name, extra in (("plain", []), ("stride600", ["--stride", "600"]), ("clouds", ["--mask-clouds"])):
        folder = tmp_path_factory.mktemp(name)
        assert main(["map", str(checkpoint), str(scene.safe), "--out", str(folder), *common, *extra]) == 0
        out[name] = folder
    return out


def _independent(scene: ScenePaths, checkpoint: Path, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Window probabilities at ``stride`` from direct reads of the band COGs, one window at a time; nodata mask."""
    import torch

    model = load_map_model(checkpoint, memory_format="contiguous")
    bands = contract.BAND_SELECTIONS["s2_10m_20m"]
    data = {b: rasterio.open(_tif(scene, b)).read(1) for b in bands}
    grid = WindowGrid.build((0.0, 0.0), 6000, 6000, stride, [10, 20])
    probs = np.full((grid.rows, grid.cols, 19), np.nan, dtype=np.float32)
    for r in range(grid.rows):
        for c in range(grid.cols):
            groups = {}
            for g, names in contract.band_groups(bands).items():
                gsd = contract.band(names[0]).gsd_m
                side, step = 1200 // gsd, stride // gsd
                stack = np.stack([data[b][r * step : r * step + side, c * step : c * step + side] for b in names])
                groups[g] = stack
            if any((v == 0).any() for v in groups.values()):
                continue
            x = {g: torch.from_numpy(np.clip(v.astype(np.float32) - 1000, 0, None))[None] for g, v in groups.items()}
            with torch.inference_mode():
                probs[r, c] = model.module.predict_proba(x)[0].numpy()
    return probs, np.isnan(probs[..., 0])


def test_overlapping_windows_are_averaged_onto_the_stride_grid(
    scene: ScenePaths, checkpoint: Path, runs: dict[str, Path]
) -> None:
    got = read_all(outputs(runs["stride600"], scene.product)["probs"])
    assert got.shape == (19, 10, 10)
    windows, _ = _independent(scene, checkpoint, 600)
    for i in range(10):
        for j in range(10):
            cover = windows[max(0, i - 1) : i + 1, max(0, j - 1) : j + 1].reshape(-1, 19)
            cover = cover[~np.isnan(cover[:, 0])]
            if len(cover):
                np.testing.assert_allclose(got[:, i, j], cover.astype(np.float64).mean(axis=0), rtol=0, atol=1e-7)
            else:
                assert np.isnan(got[:, i, j]).all()
    with rasterio.open(outputs(runs["stride600"], scene.product)["probs"]) as ds:
        assert ds.transform.a == 600 and ds.res == (600.0, 600.0)


def test_nodata_corner_windows_are_nodata(scene: ScenePaths, checkpoint: Path, runs: dict[str, Path]) -> None:
    got = read_all(outputs(runs["plain"], scene.product)["probs"])
    _, empty = _independent(scene, checkpoint, 1200)
    assert np.array_equal(np.isnan(got[0]), empty)
    assert 0 < empty.sum() < 25 and empty[0, 0] and not empty[-1, -1]
    summary = json.loads(outputs(runs["plain"], scene.product)["summary"].read_text())
    assert summary["windows"]["skipped_nodata"] == int(empty.sum())
    assert summary["windows"]["scored"] == 25 - int(empty.sum())


def test_mask_clouds_skips_windows_over_the_cloud_threshold(scene: ScenePaths, runs: dict[str, Path]) -> None:
    plain = read_all(outputs(runs["plain"], scene.product)["probs"])
    masked = read_all(outputs(runs["clouds"], scene.product)["probs"])
    scl = rasterio.open(_tif(scene, "SCL")).read(1)
    cover = np.array(
        [[np.isin(scl[r * 60 : r * 60 + 60, c * 60 : c * 60 + 60], CLOUDY).mean() for c in range(5)] for r in range(5)]
    )
    cloudy = (cover > 0.1) & ~np.isnan(plain[0])
    assert cloudy.sum() >= 3 and ((cover > 0) & (cover <= 0.1) & ~np.isnan(plain[0])).any()  # both sides tested
    assert np.array_equal(np.isnan(masked[0]), np.isnan(plain[0]) | cloudy)
    keep = ~np.isnan(masked[0])
    assert np.array_equal(masked[:, keep], plain[:, keep])
    summary = json.loads(outputs(runs["clouds"], scene.product)["summary"].read_text())
    assert summary["windows"]["skipped_cloud"] == int(cloudy.sum())
    assert summary["request"]["mask_clouds"] and summary["request"]["cloud_threshold"] == 0.1
    assert summary["scl"]["pixel_m"] == 20


def test_cogs_labels_and_class_map(scene: ScenePaths, runs: dict[str, Path]) -> None:
    files = outputs(runs["plain"], scene.product)
    probs = read_all(files["probs"])
    valid = ~np.isnan(probs[0])
    for kind in ("probs", "labels", "class"):
        with rasterio.open(files[kind]) as ds:
            assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG", kind
            assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
            assert ds.crs.to_epsg() == 32632
            tags = ds.tags()
            assert json.loads(tags["CLASSES"]) == list(contract.BEN19) and tags["STRIDE_M"] == "1200"
    with rasterio.open(files["labels"]) as ds:
        labels = ds.read()
        assert ds.descriptions == contract.BEN19 and ds.nodata == 255
    assert np.array_equal(labels[:, valid], (probs[:, valid] >= 0.5).astype(np.uint8))
    assert (labels[:, ~valid] == 255).all() and 0 < labels[:, valid].mean() < 1
    with rasterio.open(files["class"]) as ds:
        top = ds.read(1)
        cmap = ds.colormap(1)
        assert ds.nodata == 255 and ds.tags()["CLASS_0"] == contract.BEN19[0]
    assert np.array_equal(top[valid], probs[:, valid].argmax(axis=0))
    assert (top[~valid] == 255).all()
    assert [cmap[i][:3] for i in range(19)] == class_colours(contract.BEN19)
    assert cmap[255][3] == 0
    assert class_colours(["Coniferous forest"]) == [(0, 166, 0)]  # CORINE's 312
    png = files["quicklook"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in png


def test_summary_counts_areas_and_versions(scene: ScenePaths, runs: dict[str, Path]) -> None:
    files = outputs(runs["plain"], scene.product)
    summary = json.loads(files["summary"].read_text())
    labels = read_all(files["labels"])
    top = read_all(files["class"])[0]
    area = summary["area_km2"]
    for i, name in enumerate(contract.BEN19):
        assert area["labelled"][name] == pytest.approx((labels[i] == 1).sum() * 1.44)
        assert area["most_probable"][name] == pytest.approx((top == i).sum() * 1.44)
    assert summary["map_pixels"] == {"total": 25, "nodata": int((top == 255).sum()), "area_km2_each": 1.44}
    assert set(summary["timings_s"]) >= {"read", "infer", "write", "total"}
    assert summary["versions"]["gdal"] == rasterio.__gdal_version__
    assert summary["checkpoint"]["contract"]["bands"] == list(contract.BAND_SELECTIONS["s2_10m_20m"])
    assert summary["checkpoint"]["threshold"] == 0.5 and "default" in summary["checkpoint"]["threshold_source"]
    assert summary["files"] == {p.name: p.stat().st_size for k, p in files.items() if k != "summary"}
    assert summary["memory_bound_mb"] > 0


def test_writer_makes_tiled_cogs_with_overviews_for_large_maps(tmp_path: Path) -> None:
    grid = WindowGrid.build((500_000.0, 5_000_000.0), 109_800, 109_800, 200, [10, 20])
    classes = contract.BEN19[:3]
    writer = MapWriter(tmp_path, "big", grid, "EPSG:32632", classes, dtype="float16", threshold=0.4, tags={})
    rng = np.random.default_rng(0)
    rows = []
    for r in range(grid.cell_rows):
        row = rng.random((grid.cell_cols, 3)).astype(np.float32)
        row[: r % 7] = np.nan
        writer.write_row(r, row)
        rows.append(row)
    out = writer.finish()
    assert not list(tmp_path.glob(".*"))  # staging files removed
    with rasterio.open(out["probs"]) as ds:
        assert ds.shape == (grid.cell_rows, grid.cell_cols) == (549, 549)
        assert ds.block_shapes[0] == (256, 256) and ds.overviews(1) == [2, 4]
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.tags(1, ns="IMAGE_STRUCTURE")["NBITS"] == "16"
        back = ds.read(window=Window(0, 100, 549, 1))[:, 0, :].T
    np.testing.assert_array_equal(back, rows[100].astype(np.float16).astype(np.float32))
