"""BigEarthNet v2.0 reader against the official metadata parquet and real v2 files (rico-hdl), read independently."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import tifffile

from _fixtures import shared_fixture
from landzoo import contract
from landzoo.datasets.base import DatasetError, PatchError
from landzoo.datasets.bigearthnet_v2 import BigEarthNetV2, load_v2_metadata

TILE = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
REAL = f"{TILE}_75_43"  # the real S2 patch in rico-hdl
WITH_REF = f"{TILE}_26_57"  # rico-hdl has its real reference map
WITH_S1 = f"{TILE}_70_48"  # rico-hdl has its real S1 patch
ABSENT = f"{TILE}_27_55"  # in the official parquet, not on disk


def _metadata() -> Path:
    return shared_fixture("bigearthnet-pipeline", "metadata.parquet")


@pytest.fixture(scope="module")
def official() -> pa.Table:
    return pq.read_table(_metadata())


def _rows(table: pa.Table, ids: list[str]) -> pa.Table:
    return table.filter(pc.is_in(table.column("patch_id"), value_set=pa.array(ids)))


def _alias_patch(src: Path, dst: Path) -> None:
    """A patch folder named ``dst.name`` whose band files are links to ``src``'s (the reader checks names only)."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name.replace(src.name, dst.name)).symlink_to(f)


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory: pytest.TempPathFactory, official: pa.Table) -> Path:
    """A v2 root: the real patch, two aliases of it (for the real reference map and S1), real S1/reference maps,
    and the official parquet rows of those three patches."""
    rico = shared_fixture("rico-hdl", "BigEarthNet")
    root = tmp_path_factory.mktemp("v2")
    tile = root / "BigEarthNet-S2" / TILE
    tile.mkdir(parents=True)
    (tile / REAL).symlink_to(rico / "BigEarthNet-S2" / TILE / REAL)
    for alias in (WITH_REF, WITH_S1):
        _alias_patch(rico / "BigEarthNet-S2" / TILE / REAL, tile / alias)
    (root / "BigEarthNet-S1").symlink_to(rico / "BigEarthNet-S1")
    (root / "Reference_Maps").symlink_to(rico / "Reference_Maps")
    pq.write_table(_rows(official, [REAL, WITH_REF, WITH_S1]), root / "metadata.parquet")
    return root


# ---- the official parquet files -------------------------------------------------------------------------


def test_official_metadata_counts() -> None:
    df = load_v2_metadata(_metadata())
    assert len(df) == 480_038
    assert df["split"].value_counts().to_dict() == {"train": 237_871, "val": 122_342, "test": 119_825}
    assert list(df.columns) == ["patch_id", "labels", "split", "country", "s1_name", "s2v1_name",
                                "contains_seasonal_snow", "contains_cloud_or_shadow"]  # fmt: skip
    flagged = load_v2_metadata(
        shared_fixture("bigearthnet-pipeline", "metadata_for_patches_with_snow_cloud_or_shadow.parquet")
    )
    assert len(flagged) == 69_450
    assert (
        int(flagged["contains_seasonal_snow"].sum()) == 60_773
        and int(flagged["contains_cloud_or_shadow"].sum()) == 8_677
    )


# ---- real files ------------------------------------------------------------------------------------------


def test_real_patch_pixels_labels_and_meta(v2_root: Path, official: pa.Table) -> None:
    reader = BigEarthNetV2(v2_root, bands="s2_all")
    assert reader.ids() == sorted([REAL, WITH_REF, WITH_S1])
    assert reader.excluded == {} and reader.missing_from_disk == {}
    rows = {r["patch_id"]: r for r in _rows(official, reader.ids()).to_pylist()}
    reordered = 0
    for sample in reader.iter_samples():
        row = rows[sample["id"]]
        assert row["labels"] == sorted(row["labels"])  # the parquet's alphabetical order ...
        assert sample["labels"] == [c for c in contract.BEN19 if c in row["labels"]]  # ... becomes BEN19 order
        reordered += sample["labels"] != row["labels"]
        assert np.flatnonzero(sample["label"]).tolist() == sorted(contract.BEN19.index(c) for c in row["labels"])
        split = {"validation": "val"}.get(row["split"], row["split"])
        assert sample["meta"]["split"] == split
        for key in ("country", "s1_name", "s2v1_name"):
            assert sample["meta"][key] == row[key]
    assert reordered >= 1  # the re-ordering is exercised, not vacuous
    sample = reader.read(reader.ids().index(REAL))
    folder = shared_fixture("rico-hdl", "BigEarthNet", "BigEarthNet-S2", TILE, REAL)
    for group, size in (("10m", 120), ("20m", 60), ("60m", 20)):
        arr = sample["image"][group]
        assert arr.dtype == np.uint16 and arr.shape[1:] == (size, size)
        for i, band in enumerate(reader.groups[group]):
            np.testing.assert_array_equal(arr[i], tifffile.imread(folder / f"{REAL}_{band}.tif"))
    assert sample["meta"]["split"] == "val" and sample["meta"]["country"] == "Austria"


def test_real_reference_map_and_s1(v2_root: Path) -> None:
    reader = BigEarthNetV2(v2_root, bands="rgb", reference_map=True, splits=["test"])
    assert reader.ids() == [WITH_REF]  # 26_57 is a test patch
    ref = reader[0]["reference_map"]
    path = v2_root / "Reference_Maps" / TILE / WITH_REF / f"{WITH_REF}_reference_map.tif"
    expected = tifffile.imread(path)
    assert ref.dtype == np.uint16 and ref.shape == (120, 120)
    np.testing.assert_array_equal(ref, expected)
    assert set(np.unique(ref).tolist()) == {211, 231, 311, 313}  # SOURCE.md of the fixture
    assert set(np.unique(ref).tolist()) <= set(contract.BEN43_CLC_CODES.values())

    reader = BigEarthNetV2(v2_root, bands="s1", on_bad="skip")
    by_id = {s["id"]: s for s in reader.iter_samples()}
    assert set(by_id) == {WITH_S1}  # the others' S1 patches are not in the fixture ...
    assert {b.patch_id for b in reader.bad} == {REAL, WITH_REF}  # ... and are reported
    s1 = by_id[WITH_S1]["meta"]["s1_name"]
    s1_folder = v2_root / "BigEarthNet-S1" / "_".join(s1.split("_")[:-3]) / s1
    arr = by_id[WITH_S1]["image"]["s1"]
    assert arr.dtype == np.float32 and arr.shape == (2, 120, 120)
    for i, pol in enumerate(("VV", "VH")):
        np.testing.assert_array_equal(arr[i], tifffile.imread(s1_folder / f"{s1}_{pol}.tif"))


def test_missing_from_disk_report_with_the_full_parquet(v2_root: Path, official: pa.Table) -> None:
    reader = BigEarthNetV2(v2_root, metadata=_metadata(), missing="report", bands="rgb")
    assert reader.ids() == sorted([REAL, WITH_REF, WITH_S1])
    listed = Counter(official.column("split").to_pylist())
    counts = {{"validation": "val"}.get(k, k): n for k, n in listed.items()}
    for record in reader.records:
        counts[record.split] -= 1
    assert reader.missing_from_disk == counts


def test_missing_from_disk_is_counted_by_default_and_an_error_on_request(
    v2_root: Path, official: pa.Table, tmp_path: Path
) -> None:
    meta = tmp_path / "metadata.parquet"
    rows = _rows(official, [REAL, ABSENT])
    pq.write_table(rows, meta)
    raw_split = next(r["split"] for r in rows.to_pylist() if r["patch_id"] == ABSENT)
    split = {"validation": "val"}.get(raw_split, raw_split)
    reader = BigEarthNetV2(v2_root, metadata=meta)  # missing="report", the default of every reader
    assert reader.ids() == [REAL] and reader.bad == [] and reader.missing_from_disk == {split: 1}
    expected = v2_root / "BigEarthNet-S2" / ABSENT.rsplit("_", 2)[0] / ABSENT
    with pytest.raises(
        PatchError, match=rf"{ABSENT} \({expected}\): listed in the {split} split \(.*metadata.parquet\)"
    ):
        BigEarthNetV2(v2_root, metadata=meta, missing="error")
    reader = BigEarthNetV2(v2_root, metadata=meta, missing="error", on_bad="skip")
    assert reader.ids() == [REAL] and reader.missing_from_disk == {}
    assert [(b.patch_id, b.path) for b in reader.bad] == [(ABSENT, str(expected))]
    assert reader.excluded == {"not_in_metadata": 2}  # the two aliases are on disk but not in this parquet


def test_unknown_label_is_a_patch_error(v2_root: Path, official: pa.Table, tmp_path: Path) -> None:
    table = _rows(official, [REAL, WITH_REF]).to_pylist()
    table[0]["labels"] = ["Arable land", "Martian forest"]
    meta = tmp_path / "metadata.parquet"
    pq.write_table(pa.Table.from_pylist(table), meta)
    with pytest.raises(PatchError, match=r"Martian forest"):
        BigEarthNetV2(v2_root, metadata=meta)
    reader = BigEarthNetV2(v2_root, metadata=meta, on_bad="skip", bands="rgb")
    assert reader.ids() == [table[1]["patch_id"]]
    assert [(b.patch_id, Path(b.path).name) for b in reader.bad] == [(table[0]["patch_id"], "metadata.parquet")]


def test_snow_cloud_parquet_excluded_or_included(v2_root: Path, official: pa.Table, tmp_path: Path) -> None:
    rows = _rows(official, [REAL, WITH_REF, WITH_S1]).to_pylist()
    flagged = [r for r in rows if r["patch_id"] == WITH_REF]
    flagged[0]["contains_seasonal_snow"] = True
    main, snow = tmp_path / "main.parquet", tmp_path / "snow.parquet"
    pq.write_table(pa.Table.from_pylist([r for r in rows if r["patch_id"] != WITH_REF]), main)
    pq.write_table(pa.Table.from_pylist(flagged), snow)
    reader = BigEarthNetV2(v2_root, metadata=main, snow_cloud_metadata=snow, bands="rgb")
    assert WITH_REF not in reader.ids() and reader.excluded == {"snow_cloud_or_shadow": 1}
    reader = BigEarthNetV2(v2_root, metadata=main, snow_cloud_metadata=snow, include_snow_cloud=True, bands="rgb")
    assert reader.ids() == sorted([REAL, WITH_REF, WITH_S1]) and reader.excluded == {}
    sample = reader.read(reader.ids().index(WITH_REF))
    assert sample["meta"]["seasonal_snow"] is True and sample["meta"]["cloud_or_shadow"] is False


def test_wrong_shape_band_and_torchgeo_int16(v2_root: Path, official: pa.Table, tmp_path: Path) -> None:
    root = tmp_path / "v2"
    src = shared_fixture("rico-hdl", "BigEarthNet", "BigEarthNet-S2", TILE, REAL)
    shutil.copytree(src, root / "BigEarthNet-S2" / TILE / REAL)
    shutil.copy(src / f"{REAL}_B02.tif", root / "BigEarthNet-S2" / TILE / REAL / f"{REAL}_B11.tif")
    pq.write_table(_rows(official, [REAL]), root / "metadata.parquet")
    with pytest.raises(PatchError, match=rf"{REAL}_B11.tif.*expected 60x60 px, file has 120x120"):
        BigEarthNetV2(root)[0]

    torchgeo = BigEarthNetV2(shared_fixture("torchgeo", "bigearthnet", "v2"), on_bad="skip")
    assert len(torchgeo) == 4 and not torchgeo.bad
    assert list(torchgeo.iter_samples()) == []
    assert len(torchgeo.bad) == 4 and all("expected dtype uint16, file has int16" in b.reason for b in torchgeo.bad)


def test_bad_options(v2_root: Path) -> None:
    with pytest.raises(DatasetError, match="missing must be"):
        BigEarthNetV2(v2_root, missing="ignore")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="ben19"):
        BigEarthNetV2(v2_root, classes="ben43")
    with pytest.raises(DatasetError, match="does not exist"):
        BigEarthNetV2(v2_root, metadata=v2_root / "nope.parquet")
