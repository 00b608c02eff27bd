"""SEN12MS reader: official split lists, torchgeo's synthetic patches, labels vs the official formula, bad input."""

from __future__ import annotations

import os
import pickle
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
from landzoo.datasets.sen12ms import SEN12MS, read_holdout_scenes, read_split_list
from landzoo.datasets.summary import format_summary, summarise

SEASONS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
PX = 64  # torchgeo's synthetic patches


def tg_root() -> Path:
    return shared_fixture("torchgeo", "sen12ms")


def tg_ids() -> list[str]:
    return sorted(p.stem for p in tg_root().glob("ROIs*/s2_*/*.tif"))


def official_simple10(p: np.ndarray) -> np.ndarray:
    """The aggregation of schmitt-muc/SEN12MS classification/dataset.py, written out independently."""
    return np.asarray([sum(p[0:5]), sum(p[5:7]), sum(p[7:9]), p[9], p[10], p[11] + p[13], p[12], p[14], p[15], p[16]])


def write_labels(path: Path, ids: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic IGBP_probability_labels.pkl: S2 file name -> 17 fractions summing to 1."""
    rng = np.random.default_rng(seed)
    labels = {f"{i}.tif": rng.dirichlet(np.full(17, 0.3)) for i in ids}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(labels, fh, protocol=3)
    return labels


def write_list(path: Path, ids: list[str], newline: str = "\r\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{i}.tif{newline}" for i in ids).encode())
    return path


def write_tif(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0]}
    geo = {"crs": "EPSG:32632", "transform": rasterio.Affine(10, 0, 500_000, 0, -10, 5_000_000)}
    with rasterio.open(path, "w", dtype=arr.dtype, **profile, **geo) as dst:
        dst.write(arr)


# ---- official lists --------------------------------------------------------------------------------


def test_official_test_list_txt_equals_pkl_and_counts() -> None:
    splits = shared_fixture("SEN12MS", "splits")
    raw = (splits / "test_list.txt").read_bytes()
    assert b"\r\n" in raw  # the official list really is CRLF
    txt = read_split_list(splits / "test_list.txt")
    pkl = read_split_list(splits / "test_list.pkl")
    with open(splits / "test_list.pkl", "rb") as fh:
        independent = pickle.load(fh)
    assert txt == pkl == independent
    assert len(txt) == 18_106 and len(set(txt)) == 18_106
    assert not any("\r" in n or n != n.strip() for n in txt)
    seasons = Counter(n.split("_")[1] for n in txt)
    assert seasons == {"fall": 5_989, "summer": 4_529, "spring": 4_242, "winter": 3_346}


def test_holdout_scenes_are_the_test_list_scenes() -> None:
    splits = shared_fixture("SEN12MS", "splits")
    scenes = read_holdout_scenes(splits / "SEN12MS_holdOutScenes.txt")
    lines = [ln for ln in (splits / "SEN12MS_holdOutScenes.txt").read_text().split("\n") if ln.strip()]
    assert len(scenes) == len(lines) == len(set(scenes))
    # S1 folder names in the file become S2 scene ids; the same scenes as the test list, built by hand here.
    from_list = set()
    for name in read_split_list(splits / "test_list.txt"):
        roi, season, _, scene, _ = name.split("_")
        from_list.add(f"{roi}_{season}/s2_{scene}")
    assert set(scenes) == from_list


def test_official_list_over_absent_data_reports_or_raises(tmp_path: Path) -> None:
    splits = shared_fixture("SEN12MS", "splits")
    (tmp_path / "ROIs1158_spring").mkdir()
    labels = write_labels(tmp_path / "labels.pkl", [])
    assert labels == {}
    kw = {"test_list": splits / "test_list.txt", "labels_path": tmp_path / "labels.pkl"}
    r = SEN12MS(tmp_path, missing="report", **kw)
    assert len(r) == 0 and r.missing_from_disk == {"test": 18_106} and r.bad == []
    summary = summarise(r, progress=False)
    assert summary["missing_from_disk"] == {"test": 18_106} and summary["patches"] == 0
    assert "listed but absent on disk: 18,106 patch(es) (test 18,106)" in format_summary(summary)

    def order(name: str) -> tuple[int, int, int]:
        roi, season, _, scene, patch = name.removesuffix(".tif").split("_")
        return SEASONS.index(f"{roi}_{season}"), int(scene), int(patch[1:])

    first = min(read_split_list(splits / "test_list.txt"), key=order)
    with pytest.raises(PatchError, match="absent on disk") as info:
        SEN12MS(tmp_path, missing="error", **kw)
    assert info.value.patch_id == first.removesuffix(".tif")  # records are in season/scene/patch order
    skip = SEN12MS(tmp_path, on_bad="skip", missing="error", **kw)
    assert len(skip.bad) == 18_106 and skip.missing_from_disk == {}


# ---- torchgeo's synthetic patches ------------------------------------------------------------------


@pytest.fixture
def tg(tmp_path: Path) -> dict:
    ids = tg_ids()
    assert len(ids) == 8
    labels = write_labels(tmp_path / "labels" / "IGBP_probability_labels.pkl", ids)
    # One patch sits exactly on the default threshold: Water (IGBP 17) covers 0.1, which must count (>=).
    edge = np.zeros(17)
    edge[[0, 16]] = 0.9, 0.1
    labels[f"{ids[0]}.tif"] = edge
    with open(tmp_path / "labels" / "IGBP_probability_labels.pkl", "wb") as fh:
        pickle.dump(labels, fh, protocol=3)
    train = write_list(tmp_path / "train_list.txt", [i for i in ids if "winter" not in i])
    test = write_list(tmp_path / "test_list.txt", [i for i in ids if "winter" in i], newline="\n")
    kw = {"labels_path": tmp_path / "labels" / "IGBP_probability_labels.pkl", "train_list": train, "test_list": test}
    return {"ids": ids, "labels": labels, "kw": kw}


def test_pixels_and_band_order_vs_tifffile(tg: dict) -> None:
    r = open_dataset("sen12ms", tg_root(), bands="s1_s2_10m_20m", patch_px=PX, **tg["kw"])
    assert sorted(r.ids()) == tg["ids"]
    assert r.split_counts() == {"train": 6, "test": 2}
    # s2_10m_20m = B02,B03,B04,B08,B05,B06,B07,B8A,B11,B12; SEN12MS files hold B1..B8,B8A,B9,B10,B11,B12.
    file_index = [1, 2, 3, 7, 4, 5, 6, 8, 11, 12]
    for sample in r.iter_samples():
        rec = r.records[r.ids().index(sample["id"])]
        s2 = tifffile.imread(tg_root() / rec.location)  # (H, W, 13), pixel-interleaved
        roi, season_name, _, scene, patch = sample["id"].split("_")
        season = f"{roi}_{season_name}"
        s1 = tifffile.imread(tg_root() / season / f"s1_{scene}" / f"{season}_s1_{scene}_{patch}.tif")
        assert list(sample["image"]) == ["s1", "10m"]
        assert sample["image"]["10m"].dtype == np.uint16 and sample["image"]["10m"].shape == (10, PX, PX)
        np.testing.assert_array_equal(sample["image"]["10m"], np.moveaxis(s2, -1, 0)[file_index])
        np.testing.assert_array_equal(sample["image"]["s1"], np.moveaxis(s1, -1, 0))
        assert sample["bands"] == ("VV", "VH", *contract.BAND_SELECTIONS["s2_10m_20m"])
        assert sample["meta"]["season"] == season.split("_")[1]
        assert sample["meta"]["scene"] == f"{season}/s2_{scene}" and sample["meta"]["patch"] == int(patch[1:])


def test_single_band_by_name(tg: dict) -> None:
    r = SEN12MS(tg_root(), bands=["B8A", "B10"], patch_px=PX, **tg["kw"])
    s = r[0]
    s2 = tifffile.imread(tg_root() / r.records[0].location)
    np.testing.assert_array_equal(s["image"]["10m"], np.moveaxis(s2[..., [8, 10]], -1, 0))


@pytest.mark.parametrize("threshold", [0.1, 0.25])
def test_multilabel_vs_official_formula(tg: dict, threshold: float) -> None:
    simple = SEN12MS(tg_root(), patch_px=PX, bands="B02", multilabel_threshold=threshold, **tg["kw"])
    full = SEN12MS(tg_root(), patch_px=PX, bands="B02", classes="igbp17", multilabel_threshold=threshold, **tg["kw"])
    assert simple.classes == contract.SIMPLE10
    for s_simple, s_full in zip(simple.iter_samples(), full.iter_samples(), strict=True):
        p = tg["labels"][s_simple["id"] + ".tif"]
        np.testing.assert_array_equal(s_simple["label"], (official_simple10(p) >= threshold).astype(np.uint8))
        np.testing.assert_array_equal(s_full["label"], (p >= threshold).astype(np.uint8))
        assert s_simple["labels"] == [c for c, on in zip(contract.SIMPLE10, s_simple["label"], strict=True) if on]
        np.testing.assert_array_equal(s_simple["meta"]["igbp"], p.astype(np.float32))
    edge = simple.read(simple.ids().index(tg["ids"][0]))
    assert edge["labels"] == (["Forest", "Water"] if threshold == 0.1 else ["Forest"])
    # The two thresholds must actually label differently somewhere (else this test proves nothing).
    low = SEN12MS(tg_root(), patch_px=PX, bands="B02", multilabel_threshold=0.1, **tg["kw"])
    high = SEN12MS(tg_root(), patch_px=PX, bands="B02", multilabel_threshold=0.25, **tg["kw"])
    assert sum(int(a["label"].sum()) for a in low) > sum(int(b["label"].sum()) for b in high)


def test_patch_size_is_read_from_the_files(tg: dict) -> None:
    """torchgeo's fixtures are 64 px, the real data 256 px: no ``patch_px`` needed for either."""
    side = tifffile.imread(next(tg_root().glob("ROIs*/s2_*/*.tif"))).shape[0]
    assert side == PX
    r = SEN12MS(tg_root(), bands="B02", **tg["kw"])
    assert r.patch_px == PX and r.read(0)["image"]["10m"].shape == (1, PX, PX)
    forced = SEN12MS(tg_root(), bands="B02", patch_px=256, **tg["kw"])  # an explicit size still rules ...
    with pytest.raises(PatchError, match=f"expected 256x256 px, file has {PX}x{PX}"):  # ... and is checked
        forced[0]


def test_single_label_is_argmax_one_hot(tg: dict) -> None:
    r = SEN12MS(tg_root(), patch_px=PX, bands="B02", single_label=True, **tg["kw"])
    for s in r.iter_samples():
        p = tg["labels"][s["id"] + ".tif"]
        expected = np.zeros(10, dtype=np.uint8)
        expected[np.argmax(official_simple10(p))] = 1
        np.testing.assert_array_equal(s["label"], expected)


def test_labels_from_lc_band(tmp_path: Path) -> None:
    root = tmp_path / "sen12ms"
    name = "ROIs1970_fall_s2_7_p3"
    shutil.copy(next(tg_root().glob("ROIs1970_fall/s2_1/*_p1.tif")), _mk(root / "ROIs1970_fall/s2_7") / f"{name}.tif")
    rng = np.random.default_rng(1)
    lc = rng.integers(1, 18, size=(4, PX, PX)).astype(np.uint16)
    lc[0, :32] = 12  # croplands dominate
    write_tif(root / "ROIs1970_fall/lc_7/ROIs1970_fall_lc_7_p3.tif", lc)
    r = SEN12MS(root, patch_px=PX, bands="B02", label_source="lc", classes="igbp17")
    s = r.read(0)
    values, counts = np.unique(lc[0], return_counts=True)
    expected = np.zeros(17)
    expected[values - 1] = counts / lc[0].size
    np.testing.assert_allclose(s["meta"]["igbp"], expected, rtol=1e-6)
    np.testing.assert_array_equal(s["label"], (expected >= 0.1).astype(np.uint8))
    lc[0, 0, 0] = 0  # not an IGBP class
    write_tif(root / "ROIs1970_fall/lc_7/ROIs1970_fall_lc_7_p3.tif", lc)
    with pytest.raises(PatchError, match=r"ROIs1970_fall_s2_7_p3 .*lc_7_p3\.tif.*outside IGBP"):
        r[0]


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---- scene-level validation split ------------------------------------------------------------------


@pytest.fixture
def many_scenes(tmp_path: Path) -> dict:
    """4 seasons x 6 scenes x 2 patches, as symlinks to one torchgeo patch; scenes 1-2 of each season are test."""
    src = next(tg_root().glob("ROIs1158_spring/s2_1/*_p1.tif"))
    root = tmp_path / "many"
    train, test = [], []
    for season in SEASONS:
        for scene in range(1, 7):
            for patch in (1, 2):
                pid = f"{season}_s2_{scene}_p{patch}"
                os.symlink(src, _mk(root / season / f"s2_{scene}") / f"{pid}.tif")
                (test if scene <= 2 else train).append(pid)
    write_labels(root / "labels" / "IGBP_probability_labels.pkl", train + test)
    write_list(root / "splits" / "train_list.txt", train)
    write_list(root / "splits" / "test_list.txt", test)
    return {"root": root, "train": train, "test": test}


def _scenes(reader: SEN12MS, split: str) -> set[str]:
    return {r.meta["scene"] for r in reader.records if r.split == split}


def test_val_scenes_disjoint_and_deterministic(many_scenes: dict) -> None:
    root = many_scenes["root"]
    r = SEN12MS(root, patch_px=PX, val_scenes=4, seed=2071)
    assert r.split_counts() == {"train": 32 - 8, "val": 8, "test": 16}
    assert len(r.val_scene_ids) == 4 and set(r.val_scene_ids) == _scenes(r, "val")
    assert _scenes(r, "val").isdisjoint(_scenes(r, "train")) and _scenes(r, "val").isdisjoint(_scenes(r, "test"))
    train_scenes = {f"{n.split('_s2_')[0]}/s2_{n.split('_')[3]}" for n in many_scenes["train"]}
    assert _scenes(r, "val") | _scenes(r, "train") == train_scenes
    again = SEN12MS(root, patch_px=PX, val_scenes=4, seed=2071)
    assert again.val_scene_ids == r.val_scene_ids and again.ids() == r.ids()
    others = {SEN12MS(root, patch_px=PX, val_scenes=4, seed=s).val_scene_ids for s in range(5)}
    assert len(others) > 1  # the seed matters
    frac = SEN12MS(root, patch_px=PX, val_scenes=0.25, seed=2071)
    assert len(frac.val_scene_ids) == round(0.25 * 16)
    only_val = SEN12MS(root, patch_px=PX, val_scenes=4, splits=["val"])
    assert set(only_val.ids()) == {i for i, rec in zip(r.ids(), r.records, strict=True) if rec.split == "val"}


def test_val_scenes_by_name_and_bad_values(many_scenes: dict) -> None:
    root = many_scenes["root"]
    r = SEN12MS(root, patch_px=PX, val_scenes=["ROIs1868_summer/s1_3", "ROIs2017_winter/s2_6"])
    assert r.val_scene_ids == ("ROIs1868_summer/s2_3", "ROIs2017_winter/s2_6")
    with pytest.raises(DatasetError, match="not train scenes"):
        SEN12MS(root, patch_px=PX, val_scenes=["ROIs1868_summer/s2_1"])  # a test scene
    with pytest.raises(DatasetError, match="keep at least one"):
        SEN12MS(root, patch_px=PX, val_scenes=16)


def test_holdout_fallback_and_overlapping_lists(many_scenes: dict) -> None:
    root = many_scenes["root"]
    shutil.rmtree(root / "splits")
    holdout = root / "SEN12MS_holdOutScenes.txt"
    holdout.write_text("ROIs1158_spring/s1_1\nROIs2017_winter/s1_4\n")
    r = SEN12MS(root, patch_px=PX)
    assert _scenes(r, "test") == {"ROIs1158_spring/s2_1", "ROIs2017_winter/s2_4"}
    assert r.split_counts() == {"train": 44, "test": 4}
    holdout.unlink()
    assert SEN12MS(root, patch_px=PX).split_counts() == {None: 48}
    write_list(root / "splits" / "train_list.txt", many_scenes["train"])
    write_list(root / "splits" / "test_list.txt", many_scenes["train"][:3])
    with pytest.raises(DatasetError, match="in both"):
        SEN12MS(root, patch_px=PX)


def test_missing_label_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"labels[/\\]IGBP_probability_labels\.pkl does not exist"):
        SEN12MS(tg_root(), patch_px=PX, train_list=write_list(tmp_path / "t.txt", tg_ids()))


# ---- bad input ---------------------------------------------------------------------------------------


def test_bad_patches_raise_and_skip(tmp_path: Path) -> None:
    src_dir = tg_root() / "ROIs1158_spring"
    good_s2 = tifffile.imread(src_dir / "s2_1/ROIs1158_spring_s2_1_p1.tif")
    root = tmp_path / "bad"
    season = "ROIs1158_spring"

    def pid(n: int) -> str:
        return f"{season}_s2_9_p{n}"

    def s2(n: int) -> Path:
        return root / season / "s2_9" / f"{pid(n)}.tif"

    def s1(n: int) -> Path:
        return root / season / "s1_9" / f"{season}_s1_9_p{n}.tif"

    for n in range(1, 11):
        shutil.copy(src_dir / "s2_1/ROIs1158_spring_s2_1_p1.tif", _mk(s2(n).parent) / s2(n).name)
        shutil.copy(src_dir / "s1_1/ROIs1158_spring_s1_1_p1.tif", _mk(s1(n).parent) / s1(n).name)
    cube = np.moveaxis(good_s2, -1, 0)
    write_tif(s2(2), cube[:12])  # wrong band count
    write_tif(s2(3), cube.astype(np.float32))  # wrong dtype
    write_tif(s2(4), cube[:, :32, :32])  # wrong size
    os.truncate(s2(5), s2(5).stat().st_size // 2)  # truncated
    neg = cube.astype(np.int16)
    neg[0, 0, 0] = -5
    write_tif(s2(6), neg)  # int16 with a negative value
    s1_nan = np.moveaxis(tifffile.imread(s1(7)), -1, 0).copy()
    s1_nan[1, 3, 3] = np.nan
    write_tif(s1(7), s1_nan)  # NaN in S1, like the known bad ROIs1868_summer_s1_146_p202
    s1(8).unlink()  # missing S1 file
    ok_int16 = np.minimum(cube, 32_767).astype(np.int16)  # int16 without negatives is accepted and converted
    write_tif(s2(10), ok_int16)
    listed = [pid(n) for n in range(1, 12)]  # p11 is listed but absent
    labels = write_labels(root / "labels" / "IGBP_probability_labels.pkl", [p for p in listed if p != pid(9)])
    assert f"{pid(9)}.tif" not in labels  # p9 has no label entry
    write_list(root / "splits" / "train_list.txt", listed)

    kw = {"bands": "s1_s2_10m_20m", "missing": "error"}  # the patch size is read from the files, not given
    with pytest.raises(PatchError) as info:
        SEN12MS(root, **kw)
    assert info.value.patch_id == pid(9) and "IGBP_probability_labels.pkl" in str(info.value)

    r = SEN12MS(root, on_bad="skip", **kw)
    assert [(b.patch_id, Path(b.path).name) for b in r.bad] == [
        (pid(9), "IGBP_probability_labels.pkl"),
        (pid(11), f"{pid(11)}.tif"),
    ]
    assert "absent on disk" in r.bad[1].reason
    expected = {
        2: (s2(2), "expected 13 band"),
        3: (s2(3), "expected dtype uint16/int16"),
        4: (s2(4), "expected 64x64"),
        5: (s2(5), "unreadable"),
        6: (s2(6), "negative"),
        7: (s1(7), "NaN"),
        8: (s1(8), "missing"),
    }
    for n, (path, reason) in expected.items():
        with pytest.raises(PatchError, match=reason) as info:
            r[r.ids().index(pid(n))]
        assert info.value.patch_id == pid(n) and info.value.path == str(path)
        assert pid(n) in str(info.value) and str(path) in str(info.value)
    samples = list(r.iter_samples())
    assert [s["id"] for s in samples] == [pid(1), pid(10)]
    np.testing.assert_array_equal(samples[1]["image"]["10m"], ok_int16[[1, 2, 3, 7, 4, 5, 6, 8, 11, 12]])
    assert samples[1]["image"]["10m"].dtype == np.uint16
    assert sorted(b.patch_id for b in r.bad) == sorted(pid(n) for n in (*expected, 9, 11))
    assert len(r.bad) == 9
