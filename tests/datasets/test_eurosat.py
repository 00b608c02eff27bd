"""EuroSAT reader: real MS tifs (rico-hdl), torchgeo's nested DFKI layout and split lists, bad input, splits."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile

from _fixtures import shared_fixture
from landzoo import contract
from landzoo.datasets import DatasetError, PatchError, open_dataset
from landzoo.datasets.eurosat import EuroSAT, stratified_split

DFKI = "ds/images/remote_sensing/otherDatasets/sentinel_2/tif"
# EuroSAT file order is B01..B12 without B8A, then B8A (13th, index 12): written out here from formats.md.
FILE_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")


def rico() -> Path:
    return shared_fixture("rico-hdl", "EuroSAT_MS")


def torchgeo() -> Path:
    return shared_fixture("torchgeo", "eurosat")


def write_tif(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0]}
    geo = {"crs": "EPSG:32632", "transform": rasterio.Affine(10, 0, 500_000, 0, -10, 5_000_000)}
    with rasterio.open(path, "w", dtype=arr.dtype, **profile, **geo) as dst:
        dst.write(arr)


# ---- real files --------------------------------------------------------------------------------------


def test_real_pixels_by_band_name() -> None:
    r = open_dataset("eurosat", rico().parent, bands="s2_10m_20m", geo=True)  # Zenodo layout: root/EuroSAT_MS
    assert r.ids() == ["AnnualCrop_1", "Pasture_300", "SeaLake_3000"]
    assert r.split_counts() == {None: 3}
    for sample, rec in zip(r.iter_samples(), r.records, strict=True):
        cube = tifffile.imread(rico().parent / rec.location)  # (64, 64, 13), pixel-interleaved
        assert cube.shape == (64, 64, 13) and cube.dtype == np.uint16
        index = [FILE_ORDER.index(b) for b in contract.BAND_SELECTIONS["s2_10m_20m"]]
        np.testing.assert_array_equal(sample["image"]["10m"], np.moveaxis(cube, -1, 0)[index])
        assert sample["bands"] == contract.BAND_SELECTIONS["s2_10m_20m"]
        folder = Path(rec.location).parent.name
        assert sample["labels"] == [folder] and sample["meta"]["class"] == folder
        assert sample["label"].sum() == 1 and contract.EUROSAT_CLASSES[int(sample["label"].argmax())] == folder
        with rasterio.open(rico().parent / rec.location) as src:
            assert (
                sample["meta"]["crs"] == src.crs.to_string() and sample["meta"]["transform"] == tuple(src.transform)[:6]
            )


def test_b8a_is_the_last_file_band() -> None:
    r = EuroSAT(rico(), bands=["B8A"])  # root is the class-folder parent itself
    cube = tifffile.imread(rico() / "SeaLake" / "SeaLake_3000.tif")
    s = r[r.ids().index("SeaLake_3000")]
    np.testing.assert_array_equal(s["image"]["10m"][0], cube[..., 12])
    assert not np.array_equal(s["image"]["10m"][0], cube[..., 8])  # B09's slot, where SEN12MS keeps B8A
    rgb = EuroSAT(rico(), bands="rgb")[0]
    np.testing.assert_array_equal(
        rgb["image"]["10m"], np.moveaxis(tifffile.imread(rico() / "AnnualCrop/AnnualCrop_1.tif")[..., [3, 2, 1]], -1, 0)
    )


# ---- torchgeo layout and split lists ----------------------------------------------------------------------


def test_nested_dfki_layout_and_overlapping_lists() -> None:
    with pytest.raises(DatasetError, match=r"AnnualCrop_1 is in both .*eurosat-train\.txt and .*eurosat-val\.txt"):
        EuroSAT(torchgeo())  # torchgeo's lists name the same 2 patches in train, val and test
    r = EuroSAT(torchgeo(), split_files={}, bands="s2_all")
    assert r.ids() == ["AnnualCrop_1", "Forest_1"] and r.split_counts() == {None: 2}
    for s, rec in zip(r.iter_samples(), r.records, strict=True):
        assert rec.location.startswith(DFKI + "/")
        cube = tifffile.imread(torchgeo() / rec.location)
        index = [FILE_ORDER.index(b) for b in contract.BAND_SELECTIONS["s2_all"]]
        np.testing.assert_array_equal(s["image"]["10m"], np.moveaxis(cube, -1, 0)[index])
    train_only = EuroSAT(torchgeo(), split_files={"train": torchgeo() / "eurosat-train.txt"})  # .tif names
    assert train_only.split_counts() == {"train": 2}


def test_split_lists_with_jpg_names_and_crlf(tmp_path: Path) -> None:
    root = tmp_path / "eurosat"
    for cls, n in [("AnnualCrop", 1), ("AnnualCrop", 2), ("Forest", 1), ("Forest", 2), ("River", 7)]:
        _mk(root / "EuroSAT_MS" / cls)
        shutil.copy(
            next(torchgeo().glob(f"{DFKI}/{cls if cls != 'River' else 'Forest'}/*.tif")),
            root / "EuroSAT_MS" / cls / f"{cls}_{n}.tif",
        )
    (root / "eurosat-train.txt").write_bytes(b"AnnualCrop_1.jpg\r\nForest_1.jpg\r\n")
    (root / "eurosat-val.txt").write_text("AnnualCrop_2.jpg\n")
    (root / "eurosat-test.txt").write_text("Forest_2.tif\n")
    r = EuroSAT(root)
    assert {rec.id: rec.split for rec in r.records} == {
        "AnnualCrop_1": "train",
        "AnnualCrop_2": "val",
        "Forest_1": "train",
        "Forest_2": "test",
        "River_7": None,  # on disk, in no list
    }
    assert r.unlisted == ["River_7"]
    assert EuroSAT(root, split_files={}).unlisted == []  # no lists: split None for all is the plan, not news
    assert EuroSAT(root, splits=["val", "test"]).ids() == ["AnnualCrop_2", "Forest_2"]
    assert r.read(r.ids().index("River_7"))["labels"] == ["River"]


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_unknown_class_folder_names_it(tmp_path: Path) -> None:
    shutil.copytree(rico(), tmp_path / "EuroSAT_MS")
    _mk(tmp_path / "EuroSAT_MS" / "Forrest")
    with pytest.raises(DatasetError, match=r"EuroSAT_MS has folder\(s\) Forrest"):
        EuroSAT(tmp_path)
    with pytest.raises(DatasetError, match="no EuroSAT class folders"):
        EuroSAT(tmp_path / "EuroSAT_MS" / "Forrest")


# ---- bad input -------------------------------------------------------------------------------------------


def test_file_names_that_are_no_eurosat_name_get_a_true_reason(tmp_path: Path) -> None:
    """Issue 10 item 13: a name with a space or an accent was said not to "start with its folder's class"."""
    root = tmp_path / "EuroSAT_MS"
    shutil.copytree(rico(), root)
    src = rico() / "AnnualCrop/AnnualCrop_1.tif"
    odd = {
        "AnnualCrop_1 copy": "file name is not <Class>_<number>.tif like every EuroSAT file (e.g. AnnualCrop_1.tif)",
        "AnnualCröp_2": "file name is not <Class>_<number>.tif like every EuroSAT file (e.g. AnnualCrop_1.tif)",
        "AnnualCrop_３": "file name is not <Class>_<number>.tif like every EuroSAT file (e.g. AnnualCrop_1.tif)",
        "Forest_9": "file name says class Forest, its folder is AnnualCrop",
    }
    for stem in odd:
        shutil.copy(src, root / "AnnualCrop" / f"{stem}.tif")
    for stem in odd:
        assert stem.startswith(("AnnualCr", "Forest_"))  # the old reason was untrue for the first three
    r = EuroSAT(root, on_bad="skip")
    assert {b.patch_id: b.reason for b in r.bad} == odd
    assert {b.patch_id: b.path for b in r.bad} == {stem: str(root / "AnnualCrop" / f"{stem}.tif") for stem in odd}
    assert r.ids() == ["AnnualCrop_1", "Pasture_300", "SeaLake_3000"]  # the real patches are all read
    with pytest.raises(PatchError) as info:  # the first one met stops a strict reader
        EuroSAT(root)
    assert info.value.reason == odd[info.value.patch_id]


def test_bad_patches_raise_and_skip(tmp_path: Path) -> None:
    root = tmp_path / "EuroSAT_MS"
    shutil.copytree(rico(), root)
    good = np.moveaxis(tifffile.imread(rico() / "AnnualCrop/AnnualCrop_1.tif"), -1, 0)
    bad_files = {
        "AnnualCrop_2": (good[:12], "expected 13 band"),
        "AnnualCrop_3": (good.astype(np.int16), "expected dtype uint16"),
        "AnnualCrop_4": (good[:, :32, :32], "expected 64x64"),
        "AnnualCrop_5": (None, "unreadable"),
    }
    for pid, (arr, _) in bad_files.items():
        if arr is None:
            shutil.copy(rico() / "AnnualCrop/AnnualCrop_1.tif", root / "AnnualCrop" / f"{pid}.tif")
            os.truncate(root / "AnnualCrop" / f"{pid}.tif", 5_000)
        else:
            write_tif(root / "AnnualCrop" / f"{pid}.tif", arr)
    shutil.copy(rico() / "Pasture/Pasture_300.tif", root / "Pasture" / "Forest_9.tif")  # prefix disagrees
    (tmp_path / "eurosat-train.txt").write_text("AnnualCrop_1.jpg\nAnnualCrop_77.jpg\nPasture_300.jpg\n")  # 77 absent

    with pytest.raises(PatchError, match=r"Forest_9 .*Pasture/Forest_9\.tif.*says class Forest, its folder is Pasture"):
        EuroSAT(tmp_path, missing="error")
    r = EuroSAT(tmp_path, on_bad="skip", missing="error")
    assert [(b.patch_id, Path(b.path).relative_to(root).as_posix()) for b in r.bad] == [
        ("Forest_9", "Pasture/Forest_9.tif"),
        ("AnnualCrop_77", "AnnualCrop/AnnualCrop_77.tif"),
    ]
    assert "absent on disk" in r.bad[1].reason and "eurosat-train.txt" in r.bad[1].reason
    for pid, (_, reason) in bad_files.items():
        with pytest.raises(PatchError, match=reason) as info:
            r[r.ids().index(pid)]
        assert info.value.patch_id == pid and info.value.path == str(root / "AnnualCrop" / f"{pid}.tif")
    (root / "SeaLake" / "SeaLake_3000.tif").unlink()  # vanishes after indexing
    with pytest.raises(PatchError, match="file is missing"):
        r[r.ids().index("SeaLake_3000")]
    ok = [s["id"] for s in r.iter_samples()]
    assert ok == ["AnnualCrop_1", "Pasture_300"]
    assert len(r.bad) == 2 + len(bad_files) + 1
    assert {b.patch_id for b in r.bad[2:]} == {*bad_files, "SeaLake_3000"}


# ---- stratified split helper -------------------------------------------------------------------------------


def test_stratified_split_counts_and_determinism() -> None:
    labels = ["a"] * 30 + ["b"] * 10 + ["c"] * 7
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    split = stratified_split(labels, fractions, seed=0)
    counts = Counter(zip(labels, split, strict=True))
    assert (counts["a", "train"], counts["a", "val"], counts["a", "test"]) == (18, 6, 6)
    assert (counts["b", "train"], counts["b", "val"], counts["b", "test"]) == (6, 2, 2)
    # 7 x (0.6, 0.2, 0.2) = (4.2, 1.4, 1.4): floors (4, 1, 1), the one left goes to the first largest remainder.
    assert (counts["c", "train"], counts["c", "val"], counts["c", "test"]) == (4, 2, 1)
    assert stratified_split(labels, fractions, seed=0) == split
    assert stratified_split(labels, fractions, seed=1) != split
    with pytest.raises(DatasetError, match="sum to 1"):
        stratified_split(labels, {"train": 0.5, "test": 0.3}, seed=0)
