"""The synthetic Sentinel-2 L2A product: real formats, offsets, nodata corner, SCL, determinism."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landzoo import contract
from landzoo.cli import main
from landzoo.mapping.product import open_safe, parse_manifest
from landzoo.synthetic import geo
from landzoo.synthetic.s2_product import generate_s2_scene


@pytest.fixture(scope="module")
def products(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    a = generate_s2_scene(
        tmp_path_factory.mktemp("a"), size_km=3.6, seed=4, clouds=0.2, zip_product=True, workers=1, progress=False
    )
    b = generate_s2_scene(tmp_path_factory.mktemp("b"), size_km=3.6, seed=4, clouds=0.2, workers=2, progress=False)
    return a, b


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_whatever_the_workers(products) -> None:
    a, b = products
    assert _files(a.safe) == _files(b.safe) and _files(a.tif) == _files(b.tif)
    assert a.truth.read_bytes() == b.truth.read_bytes()


def test_layout_metadata_and_manifest(products) -> None:
    a, _ = products
    assert a.safe.name.startswith("S2B_MSIL2A_20240612T102559_N0510_R") and a.safe.name.endswith(".SAFE")
    product = open_safe(a.safe)
    assert product.metadata.baseline == "05.10" and product.metadata.quantification == 10000
    assert product.metadata.offsets == dict.fromkeys(contract.S2_L1C_BANDS, -1000.0)
    assert {(b, r) for b, r in product.files} == {
        (b, r) for r, bands in ((10, "B02 B03 B04 B08"), (20, "B02 B03 B04 B05 B06 B07 B8A B11 B12 SCL"), (60, "B01 B09 SCL")) for b in bands.split()
    }  # fmt: skip
    manifest = parse_manifest((a.safe / "manifest.safe").read_bytes(), "manifest.safe")
    for member in product.members.values():
        size, algo, _ = manifest[member]
        assert algo == "MD5" and size == (a.safe / member).stat().st_size
    assert not list(a.safe.rglob("*.aux.xml"))
    zipped = open_safe(a.zip)
    assert zipped.metadata == replace(product.metadata, source=zipped.metadata.source)


def test_values_georeferencing_nodata_and_scl(products) -> None:
    a, _ = products
    x0, y0 = geo.mgrs_tile_origin("T32TNS")
    truth = json.loads(a.truth.read_text())
    assert len(truth["cells"]) == 9 and all(c["ben19"] for c in truth["cells"])
    for band in ("B02", "B05", "B01"):
        res = contract.band(band).gsd_m
        (jp2,) = a.safe.glob(f"GRANULE/*/IMG_DATA/R{res}m/*_{band}_{res}m.jp2")
        (cog,) = a.tif.glob(f"*_{band}_{res}m.tif")
        with rasterio.open(jp2) as ds, rasterio.open(cog) as ct:
            assert ds.driver == "JP2OpenJPEG" and ct.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert ds.crs.to_epsg() == 32632 and (ds.transform.c, ds.transform.f) == (x0, y0)
            assert ds.res == (res, res) and ds.shape == (3600 // res, 3600 // res)
            values = ds.read(1)
            assert np.array_equal(values, ct.read(1))  # lossless JPEG 2000
        empty = values == 0
        assert empty[0, 0] and not empty[-1, -1] and 0.05 < empty.mean() < 0.15  # the default 10 % corner
        assert values[~empty].min() > 1000  # the baseline-05.10 offset is in the values
    (scl,) = a.tif.glob("*_SCL_20m.tif")
    classes = set(np.unique(rasterio.open(scl).read(1)).tolist())
    assert {0, 4} <= classes and classes & {8, 9, 10} and classes <= set(range(12))


def test_generate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["generate", "s2-scene", "--out", str(tmp_path), "--size-km", "1.2", "--baseline", "02.14", "--no-tif"]
    assert main([*args, "--workers", "1"]) == 0
    printed = capsys.readouterr().out.split()
    safe = Path(printed[0])
    assert safe.is_dir() and "_N0214_" in safe.name and len(printed) == 2  # the .SAFE and the truth file
    assert open_safe(safe).metadata.offsets == {}
    assert main(args) == 2 and "already holds" in capsys.readouterr().err
    assert main(["generate", "s2-scene", "--out", str(tmp_path / "x"), "--size-km", "1.25"]) == 2
    assert main(["generate", "s2-scene", "--out", str(tmp_path / "y"), "--patches", "3"]) == 2
    assert main(["generate", "bigearthnet-v1", "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert "--size-km 1.25" in err and "not --patches" in err and "needs --patches" in err
