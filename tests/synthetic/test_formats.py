"""Generated files have the structure of the REAL ones: TIFF tags and sizes, JSON keys and formatting,
parquet schema, pickles and CRLF split lists (real samples from shared/fixtures, read independently)."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import tifffile

from _fixtures import shared_fixture
from landzoo import contract
from landzoo.synthetic import Generated, synthesize

V2_ID = re.compile(r"^S2[AB]_MSIL2A_\d{8}T\d{6}_N9999_R\d{3}_T\d{2}[A-Z]{3}_\d{2}_\d{2}$")


@pytest.fixture(scope="module")
def ben1(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return synthesize("bigearthnet-v1", tmp_path_factory.mktemp("v1"), 9, seed=3, workers=1, progress=False, s1=True)


@pytest.fixture(scope="module")
def ben2(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return synthesize("bigearthnet-v2", tmp_path_factory.mktemp("v2"), 8, seed=3, workers=1, progress=False, s1=True)


@pytest.fixture(scope="module")
def sen(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return synthesize(
        "sen12ms", tmp_path_factory.mktemp("sen"), 30, seed=3, workers=1, progress=False, s1=True, patch_px=32
    )


@pytest.fixture(scope="module")
def euro(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    return synthesize("eurosat", tmp_path_factory.mktemp("eu"), 12, seed=3, workers=1, progress=False)


def _structure(path: Path) -> dict:
    """What must match between a real and a generated file (everything but pixels and position)."""
    tif = tifffile.TiffFile(path)
    page = tif.pages[0]
    tags = {t.code: t for t in page.tags.values()}
    with rasterio.open(path) as src:
        crs_projected = src.crs.is_projected and 32601 <= src.crs.to_epsg() <= 32660
        nodata = src.nodata
        res = tuple(round(r) for r in src.res)
    return {
        "byteorder": tif.byteorder,
        "bigtiff": tif.is_bigtiff,
        "pages": len(tif.pages),
        "dtype": page.dtype,
        "shape": page.shape,
        "compression": page.compression,
        "predictor": page.predictor,
        "rowsperstrip": page.rowsperstrip,
        "tiled": page.is_tiled,
        "planar": page.planarconfig,
        "tags": sorted(tags),
        "tag_types": {c: t.dtype for c, t in tags.items() if c not in (273, 279)},
        "crs_projected_utm": crs_projected,
        "nodata": nodata,
        "res": res,
        "geoascii": re.sub(r"\d+N", "zzN", tags[34737].value),
        "gdal_metadata": tags[42112].value if 42112 in tags else None,
    }


def _same_structure(real: Path, ours: Path, *, same_size: bool = True) -> None:
    assert _structure(ours) == _structure(real), ours.name
    if same_size:
        assert ours.stat().st_size == real.stat().st_size, ours.name


# ---- BigEarthNet v1 --------------------------------------------------------------------------------


def test_v1_band_files_match_real_structure(ben1: Generated) -> None:
    real_dir = next(shared_fixture("bigearthnet_common", "BigEarthNet-S2-Example").glob("S2A_*87_48"))
    for truth in ben1.patches:
        folder = ben1.root / "BigEarthNet-v1.0" / truth.id
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"{truth.id}_{b}.tif" for b in contract.S2_L2A_BANDS] + [f"{truth.id}_labels_metadata.json"]
        )
        for band in contract.S2_L2A_BANDS:
            _same_structure(real_dir / f"{real_dir.name}_{band}.tif", folder / f"{truth.id}_{band}.tif")


def test_v1_bands_share_the_corner_of_the_json(ben1: Generated) -> None:
    for truth in ben1.patches:
        folder = ben1.root / "BigEarthNet-v1.0" / truth.id
        doc = json.loads((folder / f"{truth.id}_labels_metadata.json").read_text())
        c = doc["coordinates"]
        for band in contract.S2_L2A_BANDS:
            with rasterio.open(folder / f"{truth.id}_{band}.tif") as src:
                assert tuple(src.bounds) == (c["ulx"], c["lry"], c["lrx"], c["uly"])
                assert src.crs.to_epsg() == 32600 + int(truth.meta["tile"][1:3])
                assert src.res == (contract.band(band).gsd_m,) * 2
                assert src.nodata is None


def test_v1_json_is_formatted_like_the_real_one(ben1: Generated) -> None:
    real_path = next(shared_fixture("bigearthnet_common", "BigEarthNet-S2-Example").glob("*/*_labels_metadata.json"))
    real_raw = real_path.read_bytes()
    real = json.loads(real_raw)
    assert not real_raw.endswith(b"\n")
    for truth in ben1.patches:
        raw = (ben1.root / "BigEarthNet-v1.0" / truth.id / f"{truth.id}_labels_metadata.json").read_bytes()
        doc = json.loads(raw)
        assert list(doc) == list(real) and list(doc["coordinates"]) == list(real["coordinates"])
        assert b"\n" not in raw and raw == json.dumps(doc).encode()  # one line, real separators, no newline
        assert doc["labels"] == list(truth.labels) and doc["labels"]
        assert all(isinstance(v, int) for v in doc["coordinates"].values())
        date = re.fullmatch(r"(\d{8})T(\d{5,6})", truth.id.split("_")[2])
        assert doc["acquisition_date"].replace("-", "").replace(" ", "T").replace(":", "") == (
            date[1] + "T" + date[2].zfill(6)
        ) or truth.id.split("_")[2] in ("20180204T94161", "20180204T94160")
        assert re.fullmatch(
            r"S2[AB]_MSIL1C_\d{8}T\d{5,6}_N020[56]_R\d{3}_T\d{2}[A-Z]{3}_\d{8}T\d{6}\.SAFE", doc["tile_source"]
        )
        assert doc["tile_source"].split("_")[5] == truth.meta["tile"]


def test_v1_s1_files_and_json(ben1: Generated) -> None:
    real_dir = next(shared_fixture("bigearthnet_gdf_builder", "s1-tiny").glob("S1*"))
    real = json.loads((real_dir / f"{real_dir.name}_labels_metadata.json").read_text())
    for truth in ben1.patches:
        s1 = truth.meta["s1_name"]
        folder = ben1.root / "BigEarthNet-S1-v1.0" / s1
        for pol in ("VV", "VH"):
            _same_structure(real_dir / f"{real_dir.name}_{pol}.tif", folder / f"{s1}_{pol}.tif")
        raw = (folder / f"{s1}_labels_metadata.json").read_bytes()
        doc = json.loads(raw)
        assert list(doc) == list(real) and list(doc["coordinates"]) == ["ulx", "uly", "lrx", "lly"]
        assert not raw.endswith(b"\n") and doc["corresponding_s2_patch"] == truth.id
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", doc["acquisition_time"])


def test_v1_split_files_are_crlf_one_column(ben1: Generated) -> None:
    listed = {}
    for split in ("train", "val", "test"):
        raw = (ben1.root / "splits" / f"{split}.csv").read_bytes()
        if raw:
            assert raw.endswith(b"\r\n") and raw.count(b"\n") == raw.count(b"\r\n")
        for line in raw.decode().split("\r\n")[:-1] if raw else []:
            assert "," not in line
            listed[line] = split
    assert listed == {t.id: t.split for t in ben1.patches}


# ---- BigEarthNet v2 --------------------------------------------------------------------------------


def test_v2_files_match_real_structure(ben2: Generated) -> None:
    real_s2 = next(shared_fixture("rico-hdl", "BigEarthNet", "BigEarthNet-S2").glob("*/*"))
    real_map = next(shared_fixture("rico-hdl", "BigEarthNet", "Reference_Maps").glob("*/*/*.tif"))
    real_s1 = next(shared_fixture("rico-hdl", "BigEarthNet", "BigEarthNet-S1").glob("*/*"))
    for truth in ben2.patches:
        assert V2_ID.fullmatch(truth.id)
        tile = truth.id.rsplit("_", 2)[0]
        folder = ben2.root / "BigEarthNet-S2" / tile / truth.id
        for band in contract.S2_L2A_BANDS:
            _same_structure(real_s2 / f"{real_s2.name}_{band}.tif", folder / f"{truth.id}_{band}.tif")
            assert tifffile.imread(folder / f"{truth.id}_{band}.tif").min() >= 1  # 0 is nodata in v2
        ours_map = ben2.root / "Reference_Maps" / tile / truth.id / f"{truth.id}_reference_map.tif"
        _same_structure(real_map, ours_map, same_size=False)
        codes = set(np.unique(tifffile.imread(ours_map)).tolist())
        assert codes <= set(contract.CLC_CODE_TO_BEN19)
        assert sorted({contract.CLC_CODE_TO_BEN19[c] for c in codes} - {None}) == list(truth.labels)
        s1 = truth.meta["s1_name"]
        s1_folder = ben2.root / "BigEarthNet-S1" / "_".join(s1.split("_")[:-3]) / s1
        for pol in ("VV", "VH"):
            _same_structure(real_s1 / f"{real_s1.name}_{pol}.tif", s1_folder / f"{s1}_{pol}.tif")


def test_v2_parquets_have_the_real_schema(ben2: Generated) -> None:
    real = pq.read_schema(shared_fixture("bigearthnet-pipeline", "metadata.parquet"))
    real_flagged = pq.read_schema(
        shared_fixture("bigearthnet-pipeline", "metadata_for_patches_with_snow_cloud_or_shadow.parquet")
    )
    main = pq.read_table(ben2.root / "metadata.parquet")
    flagged = pq.read_table(ben2.root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet")
    assert main.schema.equals(real) and flagged.schema.equals(real_flagged)
    assert main.schema.names == real.names and [str(f.type) for f in main.schema] == [str(f.type) for f in real]
    assert main.num_rows == 8 and flagged.num_rows == 1
    ids = main.column("patch_id").to_pylist()
    assert ids == sorted(ids)
    for row in main.to_pylist():
        assert row["labels"] == sorted(row["labels"]) and row["labels"]
        assert set(row["labels"]) <= set(contract.BEN19)
        assert row["split"] in ("train", "validation", "test")
        assert not row["contains_seasonal_snow"] and not row["contains_cloud_or_shadow"]
        assert row["s2v1_name"].split("_")[-2:] == [str(int(x)) for x in row["patch_id"].split("_")[-2:]]
        assert row["s1_name"].split("_")[-3] == row["patch_id"].split("_")[5][1:]
    for row in flagged.to_pylist():
        assert row["contains_seasonal_snow"] != row["contains_cloud_or_shadow"]
    truth = {t.id: t for t in ben2.patches}
    for row in main.to_pylist() + flagged.to_pylist():
        assert tuple(row["labels"]) == truth[row["patch_id"]].labels


# ---- SEN12MS --------------------------------------------------------------------------------------


def test_sen12ms_files_labels_and_lists(sen: Generated) -> None:
    real_test = shared_fixture("SEN12MS", "splits", "test_list.txt").read_bytes()
    assert real_test.count(b"\r\n") == real_test.count(b"\n")  # the real list is CRLF, so must ours be
    with open(sen.root / "labels" / "IGBP_probability_labels.pkl", "rb") as fh:
        labels = pickle.load(fh)
    lists = {}
    for split in ("train", "test"):
        raw = (sen.root / "splits" / f"{split}_list.txt").read_bytes()
        assert raw.endswith(b"\r\n") and raw.count(b"\r\n") == raw.count(b"\n")
        names = raw.decode().split("\r\n")[:-1]
        assert pickle.loads((sen.root / "splits" / f"{split}_list.pkl").read_bytes()) == names
        assert (sen.root / "splits" / f"{split}_list.pkl").read_bytes()[:2] == b"\x80\x03"  # protocol 3
        lists[split] = names
    assert lists["test"] and lists["train"]
    scenes = {s: {"_".join(n.split("_")[:4]) for n in names} for s, names in lists.items()}
    assert not scenes["train"] & scenes["test"]  # whole scenes in test
    assert set(labels) == set(lists["train"]) | set(lists["test"]) == {t.id + ".tif" for t in sen.patches}
    for truth in sen.patches:
        rois, season_name, _, scene, patch = truth.id.split("_")
        season = f"{rois}_{season_name}"
        base = sen.root / season
        s2 = tifffile.imread(base / f"s2_{scene}" / f"{truth.id}.tif")
        lc = tifffile.imread(base / f"lc_{scene}" / f"{season}_lc_{scene}_{patch}.tif")
        s1 = tifffile.imread(base / f"s1_{scene}" / f"{season}_s1_{scene}_{patch}.tif")
        assert s2.shape == (32, 32, 13) and s2.dtype == np.uint16
        assert lc.shape == (32, 32, 4) and lc.dtype == np.uint16
        assert s1.shape == (32, 32, 2) and s1.dtype == np.float32 and np.isfinite(s1).all()
        assert lc[..., 0].min() >= 1 and lc[..., 0].max() <= 17
        fractions = np.bincount(lc[..., 0].ravel(), minlength=18)[1:] / lc[..., 0].size
        value = labels[truth.id + ".tif"]
        assert isinstance(value, np.ndarray) and value.shape == (17,)
        np.testing.assert_allclose(value, fractions)
        assert abs(value.sum() - 1) < 1e-9
        with rasterio.open(base / f"s2_{scene}" / f"{truth.id}.tif") as src:
            assert src.count == 13 and src.res == (10.0, 10.0) and src.crs.is_projected
            assert src.block_shapes[0] == (8192 // (32 * 13 * 2), 32)  # GDAL-default strips of 8 KiB, not tiles


# ---- EuroSAT --------------------------------------------------------------------------------------


def test_eurosat_files_match_real_structure(euro: Generated) -> None:
    real = next(shared_fixture("rico-hdl", "EuroSAT_MS").glob("AnnualCrop/*.tif"))
    counts = {}
    for truth in euro.patches:
        cls, n = truth.id.rsplit("_", 1)
        assert not n.startswith("0") and int(n) >= 1
        counts[cls] = counts.get(cls, 0) + 1
        path = euro.root / "EuroSAT_MS" / cls / f"{truth.id}.tif"
        _same_structure(real, path)
        with rasterio.open(path) as src:
            assert all(abs(r - 10) < 0.05 for r in src.res)
    real_counts = dict(
        zip(contract.EUROSAT_CLASSES, (3000, 3000, 3000, 2500, 2500, 2000, 2500, 3000, 2500, 3000), strict=True)
    )
    assert sum(counts.values()) == 12
    for cls, share in real_counts.items():  # balanced-ish: the real proportions, rounded
        assert abs(counts.get(cls, 0) - 12 * share / 27000) < 1
    assert sorted(p.name for p in (euro.root / "EuroSAT_MS").iterdir()) == sorted(counts)
