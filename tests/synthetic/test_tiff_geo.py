"""The TIFF writer and the georeferencing helpers reproduce the REAL files and JSONs exactly.

Each real GeoTIFF in the fixtures is re-encoded from its own pixels and tie point with the layout the
synthetic writers use for that kind of file; the result must equal the real file byte for byte.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import tifffile
from rasterio.io import MemoryFile

from _fixtures import shared_fixture
from landzoo import contract
from landzoo.synthetic import bigearthnet_v1 as v1mod
from landzoo.synthetic import eurosat as eurosat_mod
from landzoo.synthetic import geo
from landzoo.synthetic.common import layout
from landzoo.synthetic.tiff import TiffLayout


def _real(path: Path) -> tuple[np.ndarray, float, float, int, tuple[float, float]]:
    page = tifffile.TiffFile(path).pages[0]
    tie = page.tags["ModelTiepointTag"].value
    scale = page.tags["ModelPixelScaleTag"].value
    zone = int(re.search(r"zone (\d+)N", page.tags["GeoAsciiParamsTag"].value).group(1))
    return page.asarray(), tie[3], tie[4], zone, (scale[0], scale[1])


def _band_of(path: Path) -> str:
    return path.stem.rsplit("_", 1)[1]


def test_v1_s2_bands_are_reproduced_byte_for_byte() -> None:
    files = sorted(shared_fixture("bigearthnet_common", "BigEarthNet-S2-Example").glob("*/*.tif"))
    assert len(files) == 72
    for path in files:
        arr, x, y, zone, _ = _real(path)
        assert v1mod.band_layout(_band_of(path), zone).encode(arr, x, y) == path.read_bytes(), path.name


def test_v1_s1_bands_are_reproduced_byte_for_byte() -> None:
    files = sorted(shared_fixture("bigearthnet_gdf_builder", "s1-tiny").glob("*/*.tif"))
    assert files
    for path in files:
        arr, x, y, zone, _ = _real(path)
        assert arr.dtype == np.float32
        assert v1mod.s1_layout(zone).encode(arr, x, y) == path.read_bytes(), path.name


def test_v2_s2_bands_are_reproduced_byte_for_byte() -> None:
    files = sorted(shared_fixture("rico-hdl", "BigEarthNet", "BigEarthNet-S2").glob("*/*/*.tif"))
    assert len(files) == 12
    for path in files:
        arr, x, y, zone, _ = _real(path)
        assert v1mod.band_layout(_band_of(path), zone, v2=True).encode(arr, x, y) == path.read_bytes(), path.name


def test_eurosat_tifs_are_reproduced_byte_for_byte() -> None:
    files = sorted(shared_fixture("rico-hdl", "EuroSAT_MS").glob("*/*.tif"))
    assert len(files) == 3
    for path in files:
        arr, x, y, zone, size = _real(path)
        lay = layout(
            width=64, height=64, dtype="uint16", zone=zone, pixel_size=size, samples=13,
            gdal_metadata=eurosat_mod.GDAL_METADATA,
        )  # fmt: skip
        assert lay.encode(arr, x, y) == path.read_bytes(), path.name


def test_reference_map_header_and_deflate_strips() -> None:
    path = next(shared_fixture("rico-hdl", "BigEarthNet", "Reference_Maps").glob("*/*/*.tif"))
    page = tifffile.TiffFile(path).pages[0]
    arr, x, y, zone, _ = _real(path)
    lay = TiffLayout(
        width=120, height=120, dtype="uint16", zone=zone, pixel_size=(10.0, 10.0),
        compression="deflate", predictor=True, nodata="0",
    )  # fmt: skip
    head, _ = lay._header(x, y, list(page.databytecounts))
    real = path.read_bytes()
    assert head == real[: len(head)]  # same tags, same layout, given the real strip sizes
    ours = lay.encode(arr, x, y)  # our zlib strips decode to the same codes, with rasterio and tifffile
    assert np.array_equal(tifffile.imread(io.BytesIO(ours)), arr)
    with MemoryFile(ours) as mem, mem.open() as src:
        assert src.profile["compress"] == "deflate" and src.nodata == 0
        assert np.array_equal(src.read(1), arr)


@pytest.mark.parametrize(
    ("dtype", "samples", "zone"), [("uint16", 1, 33), ("float32", 2, 7), ("uint16", 13, 35), ("uint16", 4, 60)]
)
def test_encoded_files_read_back_with_rasterio_and_tifffile(dtype: str, samples: int, zone: int) -> None:
    rng = np.random.default_rng(0)
    shape = (40, 40) if samples == 1 else (40, 40, samples)
    arr = (rng.random(shape) * 5000).astype(dtype)
    lay = TiffLayout(width=40, height=40, dtype=dtype, zone=zone, pixel_size=(10.0, 10.0), samples=samples)
    data = lay.encode(arr, 500_000.0, 5_000_040.0)
    assert np.array_equal(tifffile.imread(io.BytesIO(data)), arr)
    with MemoryFile(data) as mem, mem.open() as src:
        assert src.crs.to_epsg() == 32600 + zone
        assert tuple(src.transform)[:6] == (10.0, 0.0, 500_000.0, 0.0, -10.0, 5_000_040.0)
        assert src.nodata is None and src.count == samples and src.dtypes[0] == dtype
        back = src.read()
    assert np.array_equal(back, arr.reshape(40, 40, samples).transpose(2, 0, 1))


def _real_v1_jsons() -> list[tuple[str, dict]]:
    out = []
    for folder in ("bigearthnet_common/BigEarthNet-S2-Example", "bigearthnet_gdf_builder/tiny"):
        for path in sorted(shared_fixture(*folder.split("/")).glob("*/*_labels_metadata.json")):
            out.append((path.parent.name, json.loads(path.read_text())))
    return out


def test_corners_projection_and_orbits_match_the_real_jsons() -> None:
    docs = _real_v1_jsons()
    assert len(docs) == 17
    for name, doc in docs:
        sat, stamp, col, row = re.fullmatch(r"(S2[AB])_MSIL2A_(\d{8}T\d{5,6})_(\d+)_(\d+)", name).groups()
        product = doc["tile_source"].split("_")
        tile, zone = product[5], int(product[5][1:3])
        ulx, uly = geo.patch_corner(tile, int(col), int(row))
        c = doc["coordinates"]
        assert (ulx, uly, ulx + 1200, uly - 1200) == (c["ulx"], c["uly"], c["lrx"], c["lry"]), name
        assert geo.utm_wkt(zone) == doc["projection"]
        when = datetime.strptime(doc["acquisition_date"], "%Y-%m-%d %H:%M:%S")
        ours = geo.l1c_product_name(sat, stamp, when, tile).split("_")
        assert ours[:6] == product[:6], name  # satellite, level, sensing stamp (quirk kept), baseline, orbit, tile


def test_true_time_of_quirk_names_matches_the_real_jsons() -> None:
    for name, doc in _real_v1_jsons():
        info = ("S1A_IW_GRDH_1SDV_20170613T165043_" + doc["tile_source"].split("_")[5][1:] + "_0_0", "X", "Summer")
        parsed = v1mod.parse_v1(name, info)
        assert parsed.when.strftime("%Y-%m-%d %H:%M:%S") == doc["acquisition_date"], name


def test_relative_orbit_matches_official_v2_ids() -> None:
    import pyarrow.parquet as pq

    ids = pq.read_table(shared_fixture("bigearthnet-pipeline", "metadata.parquet"), columns=["patch_id"])
    sample = ids.column(0).to_pylist()[::97]
    for pid in sample:
        sat, stamp, orbit = re.match(r"(S2[AB])_MSIL2A_(\d{8}T\d{6})_N9999_R(\d{3})_", pid).groups()
        assert geo.relative_orbit(sat, datetime.strptime(stamp, "%Y%m%dT%H%M%S")) == int(orbit), pid


def test_s1_scene_source_has_the_real_shape() -> None:
    real = "S1A_IW_GRDH_1SDV_20170613T165043_20170613T165108_017018_01C579_7EEC"
    ours = geo.s1_scene_source("S1A", datetime(2017, 6, 13, 16, 50, 43))
    assert ours[: len("S1A_IW_GRDH_1SDV_20170613T165043_20170613T165108_017018_01C579")] == real[:-5]
    # another real one, 1509 orbits later
    later = geo.s1_scene_source("S1A", datetime(2017, 9, 25, 4, 32, 56))
    assert later.split("_")[6] == "018527"


def test_band_file_sizes_are_the_real_ones() -> None:
    sizes = {10: 29192, 20: 7560, 60: 1160}
    for band in contract.S2_L2A_BANDS:
        lay = v1mod.band_layout(band, 33)
        px = contract.band(band).ben_patch_px
        data = lay.encode(np.ones((px, px), np.uint16), 0, 0)
        assert len(data) == sizes[contract.band(band).gsd_m]
        assert (
            len(v1mod.band_layout(band, 33, v2=True).encode(np.ones((px, px), np.uint16), 0, 0))
            == {10: 29196, 20: 7572, 60: 1172}[contract.band(band).gsd_m]
        )
