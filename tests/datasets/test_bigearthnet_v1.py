"""BigEarthNet v1.0 reader against real patches, read independently with tifffile / json / the official lists."""

from __future__ import annotations

import bz2
import json
import shutil
import tarfile
from pathlib import Path

import bigearthnet_common.constants as ben
import numpy as np
import pytest
import tifffile

from _fixtures import shared_fixture
from landzoo import contract
from landzoo.datasets.base import DatasetError, PatchError
from landzoo.datasets.bigearthnet_v1 import BigEarthNetV1, official_v1_splits, v1_snow_cloud_lists

EXAMPLE = ("bigearthnet_common", "BigEarthNet-S2-Example")
TINY = ("bigearthnet_gdf_builder", "tiny")
SNOWY = "S2B_MSIL2A_20180204T94161_57_38"  # in the seasonal-snow list (SOURCE.md)


def _bz2_lines(*parts: str) -> list[str]:
    """Independent read of a list in the shared copy of bigearthnet-common's data."""
    text = bz2.decompress(shared_fixture("bigearthnet_common", *parts).read_bytes()).decode()
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def official() -> dict[str, set[str]]:
    return {s: set(_bz2_lines(f"{s}.csv.bz2")) for s in ("train", "val", "test")}


def _json(folder: Path) -> dict:
    return json.loads((folder / f"{folder.name}_labels_metadata.json").read_text())


def _copy_patches(src: Path, dst: Path, names: list[str] | None = None) -> list[str]:
    dst.mkdir(parents=True, exist_ok=True)
    names = names or sorted(p.name for p in src.iterdir() if p.is_dir())
    for n in names:
        shutil.copytree(src / n, dst / n)
    return names


# ---- official lists --------------------------------------------------------------------------------


def test_official_lists_sizes_disjoint_and_equal_to_shared_copy(official: dict[str, set[str]]) -> None:
    lists = official_v1_splits()
    assert {s: len(v) for s, v in lists.items()} == {"train": 269_695, "val": 123_723, "test": 125_866}
    sets = {s: set(v) for s, v in lists.items()}
    assert sets == official
    assert not (sets["train"] & sets["val"] or sets["train"] & sets["test"] or sets["val"] & sets["test"])
    assert sum(map(len, sets.values())) == ben.BEN_RECOMMENDED_SIZE
    flags = v1_snow_cloud_lists()
    assert len(flags["seasonal_snow"]) == 61_707 == len(set(flags["seasonal_snow"]))
    assert len(flags["cloud_or_shadow"]) == 9_280
    every_split = set().union(*sets.values())
    assert not set(flags["seasonal_snow"]) & every_split and not set(flags["cloud_or_shadow"]) & every_split


# ---- real example patches ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example_reader() -> BigEarthNetV1:
    return BigEarthNetV1(shared_fixture(*EXAMPLE), bands="s2_all", drop_snow_cloud=False)


def test_example_pixels_equal_independent_tifffile_read(example_reader: BigEarthNetV1) -> None:
    assert len(example_reader) == 6
    sizes = {"10m": 120, "20m": 60, "60m": 20}
    for sample in example_reader.iter_samples():
        folder = example_reader.root / sample["id"]
        assert list(sample["image"]) == ["10m", "20m", "60m"]
        assert sample["bands"] == contract.BAND_SELECTIONS["s2_all"]
        for group, names in example_reader.groups.items():
            arr = sample["image"][group]
            assert arr.dtype == np.uint16 and arr.shape == (len(names), sizes[group], sizes[group])
            for i, band in enumerate(names):
                np.testing.assert_array_equal(arr[i], tifffile.imread(folder / f"{sample['id']}_{band}.tif"))


def test_example_labels_dates_and_splits(example_reader: BigEarthNetV1, official: dict[str, set[str]]) -> None:
    for sample in example_reader.iter_samples():
        data = _json(example_reader.root / sample["id"])
        # 43 -> 19 through bigearthnet-common's own mapping (independent of the contract).
        expected19 = {ben.OLD2NEW_LABELS_DICT[x] for x in data["labels"]} - {None}
        assert set(sample["labels"]) == expected19
        assert sample["labels"] == [c for c in ben.NEW_LABELS_ORIGINAL_ORDER if c in expected19]
        hot = [ben.NEW_LABELS_ORIGINAL_ORDER.index(c) for c in expected19]
        assert sorted(np.flatnonzero(sample["label"]).tolist()) == sorted(hot)
        assert sample["meta"]["date"] == data["acquisition_date"].replace(" ", "T")
        assert sample["meta"]["tile_source"] == data["tile_source"]
        in_split = [s for s, names in official.items() if sample["id"] in names]
        assert sample["meta"]["split"] == (in_split[0] if in_split else None)
        assert sample["meta"]["seasonal_snow"] == (sample["id"] == SNOWY)
    by_id = {s["id"]: s for s in example_reader.iter_samples()}
    # The 5-digit-time name: the hour's leading zero lives only in the JSON.
    assert by_id["S2B_MSIL2A_20170924T93020_69_24"]["meta"]["date"] == "2017-09-24T09:30:20"
    assert by_id["S2A_MSIL2A_20170613T101031_87_48"]["meta"]["split"] == "test"
    assert by_id[SNOWY]["meta"]["split"] is None
    assert example_reader.split_source.startswith("official")


def test_ben43_labels_in_tu_berlin_order() -> None:
    reader = BigEarthNetV1(shared_fixture(*EXAMPLE), bands="rgb", classes="ben43")
    for sample in reader.iter_samples():
        data = _json(reader.root / sample["id"])
        hot = sorted(ben.OLD_LABELS_ORIGINAL_ORDER.index(x) for x in set(data["labels"]))
        assert np.flatnonzero(sample["label"]).tolist() == hot
        assert sample["label"].shape == (43,)


def test_snow_cloud_dropped_by_default_and_counted() -> None:
    reader = BigEarthNetV1(shared_fixture(*EXAMPLE), bands="rgb")
    assert SNOWY not in reader.ids() and len(reader) == 5
    assert reader.excluded == {"seasonal_snow": 1, "cloud_or_shadow": 0}


# ---- the tiny folder: 5-digit times, all three splits, country/season table ----------------------------


def test_tiny_splits_countries_and_missing_counts(official: dict[str, set[str]]) -> None:
    root = shared_fixture(*TINY)
    reader = BigEarthNetV1(root, bands="s2_10m")
    names = sorted(p.name for p in root.iterdir())
    assert reader.ids() == names
    expected = {n: next((s for s, v in official.items() if n in v), None) for n in names}
    assert {r.id: r.split for r in reader.records} == expected
    assert {"train", "val", "test"} <= set(expected.values())
    assert reader.missing_from_disk == {
        s: len(official[s]) - sum(v == s for v in expected.values()) for s in ("train", "val", "test")
    }
    # Independent read of the country/season table.
    rows = [ln.split(",") for ln in _bz2_lines("s1_s2_name_country_season.csv.bz2")]
    assert rows[0] == ["s1_name", "s2_name", "country", "season"]
    table = {r[1]: (r[0], r[2], r[3]) for r in rows[1:] if r[1] in expected}
    for sample in reader.iter_samples():
        s1, country, season = table[sample["id"]]
        assert (sample["meta"]["country"], sample["meta"]["season"], sample["meta"]["s1_name"]) == (country, season, s1)
        data = _json(root / sample["id"])
        assert sample["meta"]["date"] == data["acquisition_date"].replace(" ", "T")
    five_digit = reader.read(reader.ids().index("S2B_MSIL2A_20170924T93021_41_29"))
    assert five_digit["meta"]["date"].startswith("2017-09-24T09:30:")


# ---- folder forms, in-folder splits, torchgeo's synthetic copy ------------------------------------------


def test_parent_root_and_in_folder_splits_crlf(tmp_path: Path) -> None:
    names = _copy_patches(shared_fixture(*EXAMPLE), tmp_path / "BigEarthNet-v1.0", ["S2A_MSIL2A_20170617T113321_4_55"])
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.csv").write_bytes(f"{names[0]}\r\n\r\n".encode())
    (tmp_path / "splits" / "val.csv").write_bytes(b"")
    reader = BigEarthNetV1(tmp_path, bands="rgb")
    assert reader.patches_dir == tmp_path / "BigEarthNet-v1.0"
    assert str(tmp_path / "splits") in reader.split_source
    assert reader.split_counts() == {"train": 1} and reader.missing_from_disk == {}
    assert reader[0]["image"]["10m"].shape == (3, 120, 120)


def test_patches_in_no_split_list_are_recorded(tmp_path: Path) -> None:
    names = _copy_patches(
        shared_fixture(*EXAMPLE),
        tmp_path / "BigEarthNet-v1.0",
        ["S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170617T113321_4_55"],
    )
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.csv").write_text(f"{names[0]}\n")
    reader = BigEarthNetV1(tmp_path, bands="rgb")
    assert {r.id: r.split for r in reader.records} == {names[0]: "train", names[1]: None}
    assert reader.unlisted == [names[1]]
    # The official lists name every (not snowy or cloudy) example patch.
    assert BigEarthNetV1(shared_fixture(*EXAMPLE), bands="rgb").unlisted == []


def test_torchgeo_two_column_lf_splits_and_2x2_bands_raise() -> None:
    root = shared_fixture("torchgeo", "bigearthnet", "v1")
    files = {s: root / f"bigearthnet-{s}.csv" for s in ("train", "val", "test")}
    reader = BigEarthNetV1(root, split_files=files, bands="s2_10m_20m")
    assert reader.patches_dir == root / "BigEarthNet-v1.0"
    listed = {}
    for s, path in files.items():
        for line in path.read_text().splitlines():
            s2, s1 = line.split(",")
            listed[s2] = (s, s1)
    assert {r.id: (r.split, r.meta["s1_name"]) for r in reader.records} == listed
    with pytest.raises(PatchError, match=r"expected 120x120 px, file has 2x2") as err:
        reader[0]
    assert reader.ids()[0] in str(err.value) and "_B02.tif" in str(err.value)


def test_unofficial_split_file_line_and_duplicates_are_dataset_errors(tmp_path: Path) -> None:
    root = shared_fixture(*EXAMPLE)
    bad = tmp_path / "train.csv"
    bad.write_text("name\n")
    with pytest.raises(DatasetError, match=r"train.csv, line 1"):
        BigEarthNetV1(root, split_files={"train": bad})
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("S2A_MSIL2A_20170617T113321_4_55\n")
    b.write_text("S2A_MSIL2A_20170617T113321_4_55\n")
    with pytest.raises(DatasetError, match="also in the train split"):
        BigEarthNetV1(root, split_files={"train": a, "test": b})


# ---- S1 -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s1_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s1")
    with tarfile.open(shared_fixture("bigearthnet_common", "BigEarthNet-S1-Example.tar.bz2")) as tar:
        tar.extractall(out, filter="data")
    return out / "BigEarthNet-S1-Example"


def test_s1_pairs_and_pixels(s1_dir: Path) -> None:
    reader = BigEarthNetV1(shared_fixture(*EXAMPLE), bands="s1_s2_10m_20m", s1_root=s1_dir, drop_snow_cloud=False)
    pairs = {}
    for folder in s1_dir.iterdir():
        data = _json(folder)
        assert "lly" in data["coordinates"]  # the v1 S1 typo the reader must accept
        pairs[data["corresponding_s2_patch"]] = folder.name
    for sample in reader.iter_samples():
        s1 = pairs[sample["id"]]
        assert sample["meta"]["s1_name"] == s1
        assert list(sample["image"]) == ["s1", "10m", "20m"]
        arr = sample["image"]["s1"]
        assert arr.dtype == np.float32 and arr.shape == (2, 120, 120)
        for i, pol in enumerate(("VV", "VH")):
            np.testing.assert_array_equal(arr[i], tifffile.imread(s1_dir / s1 / f"{s1}_{pol}.tif"))
    # Without the table's pairing, the S1 JSONs' corresponding_s2_patch gives the same answer.
    reader._names = {}
    assert reader.read(0)["meta"]["s1_name"] == pairs[reader.ids()[0]]


def test_s1_without_folder_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match="s1_root"):
        BigEarthNetV1(shared_fixture(*EXAMPLE), bands="s1")


# ---- bad input, one fault per case on a copy ----------------------------------------------------------

VICTIM = "S2A_MSIL2A_20170617T113321_36_85"


def _break(folder: Path, fault: str) -> str:
    """Damage one patch copy; return the file name the error must mention."""
    p = folder.name
    if fault == "missing band":
        (folder / f"{p}_B03.tif").unlink()
        return f"{p}_B03.tif"
    if fault == "wrong shape":
        shutil.copy(folder / f"{p}_B02.tif", folder / f"{p}_B05.tif")
        return f"{p}_B05.tif"
    if fault == "wrong dtype":
        tifffile.imwrite(folder / f"{p}_B04.tif", np.zeros((120, 120), dtype=np.float32))
        return f"{p}_B04.tif"
    if fault == "truncated":
        path = folder / f"{p}_B08.tif"
        path.write_bytes(path.read_bytes()[:15_000])
        return f"{p}_B08.tif"
    if fault == "corrupt":
        path = folder / f"{p}_B02.tif"
        path.write_bytes(b"\x00" * 16 + path.read_bytes()[16:])
        return f"{p}_B02.tif"
    path = folder / f"{p}_labels_metadata.json"
    data = json.loads(path.read_text())
    if fault == "malformed json":
        path.write_text(path.read_text()[:40])
    elif fault == "missing key":
        del data["acquisition_date"]
        path.write_text(json.dumps(data))
    elif fault == "unknown label":
        data["labels"] = ["Pastures", "Martian forest"]
        path.write_text(json.dumps(data))
    return path.name


FAULTS = ["missing band", "wrong shape", "wrong dtype", "truncated", "corrupt", "malformed json", "missing key",
          "unknown label"]  # fmt: skip


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")  # the plain float32 tif
@pytest.mark.parametrize("fault", FAULTS)
def test_bad_patch_raises_or_is_recorded(tmp_path: Path, fault: str) -> None:
    names = _copy_patches(shared_fixture(*EXAMPLE), tmp_path, [VICTIM, "S2A_MSIL2A_20170617T113321_4_55"])
    file_name = _break(tmp_path / VICTIM, fault)
    with pytest.raises(PatchError) as err:
        list(BigEarthNetV1(tmp_path, bands="s2_10m_20m"))
    assert VICTIM in str(err.value) and file_name in str(err.value)
    reader = BigEarthNetV1(tmp_path, bands="s2_10m_20m", on_bad="skip")
    assert [s["id"] for s in reader.iter_samples()] == [n for n in names if n != VICTIM]
    assert [(b.patch_id, Path(b.path).name) for b in reader.bad] == [(VICTIM, file_name)]


def test_listed_but_absent_patch(tmp_path: Path) -> None:
    _copy_patches(shared_fixture(*EXAMPLE), tmp_path / "BigEarthNet-v1.0", [VICTIM])
    split = tmp_path / "splits" / "test.csv"
    split.parent.mkdir()
    split.write_text(f"{VICTIM}\nS2A_MSIL2A_20170613T101031_87_48\n")
    absent = "S2A_MSIL2A_20170613T101031_87_48"
    reader = BigEarthNetV1(tmp_path)  # missing="report", the default of every reader: counted, the rest is read
    assert reader.ids() == [VICTIM] and reader.records[0].split == "test"
    assert reader.missing_from_disk == {"test": 1} and reader.bad == []
    expected = tmp_path / "BigEarthNet-v1.0" / absent
    with pytest.raises(
        PatchError, match=rf"{absent} \({expected}\): listed in the test split \(.*test.csv\) but absent"
    ):
        BigEarthNetV1(tmp_path, missing="error")
    reader = BigEarthNetV1(tmp_path, missing="error", on_bad="skip")
    assert reader.ids() == [VICTIM] and reader.missing_from_disk == {}
    assert [(b.patch_id, b.path) for b in reader.bad] == [(absent, str(expected))]
    assert str(split) in reader.bad[0].reason


def test_foreign_folder_and_no_ben19_labels(tmp_path: Path) -> None:
    _copy_patches(shared_fixture(*EXAMPLE), tmp_path, [VICTIM])
    (tmp_path / "notes").mkdir()
    with pytest.raises(PatchError, match=r"notes.*not a BigEarthNet v1 S2 patch name"):
        BigEarthNetV1(tmp_path)
    path = tmp_path / VICTIM / f"{VICTIM}_labels_metadata.json"
    data = json.loads(path.read_text())
    data["labels"] = ["Bare rock", "Airports"]  # both dropped in the 19-class nomenclature
    path.write_text(json.dumps(data))
    reader = BigEarthNetV1(tmp_path, bands="rgb", on_bad="skip")
    assert [b.patch_id for b in reader.bad] == ["notes"]
    sample = reader.read(0)
    assert sample["label"].sum() == 0 and sample["labels"] == [] and sample["meta"]["no_ben19_labels"] is True
    sample43 = BigEarthNetV1(tmp_path, bands="rgb", classes="ben43", on_bad="skip").read(0)
    assert sample43["labels"] == ["Airports", "Bare rock"]
