"""Transfer protocols against independent reads of the raw files: labels, splits, statistics, resize vs crop."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from transfer_synth import sen12ms_store

from landzoo import contract
from landzoo.errors import LandzooError
from landzoo.transfer.protocols import (
    ProtocolError,
    Resolution,
    band_stats_from,
    get_protocol,
    open_target,
)

# SEN12MS simplified-IGBP aggregation written out from formats.md 3.3 (0-based vector indices), independently
# of landzoo.contract: [sum(p[0:5]), sum(p[5:7]), sum(p[7:9]), p[9], p[10], p[11]+p[13], p[12], p[14], p[15], p[16]]
SIMPLE = ((0, 1, 2, 3, 4), (5, 6), (7, 8), (9,), (10,), (11, 13), (12,), (14,), (15,), (16,))
# SEN12MS S2 file band order (B8A 9th), from formats.md 3.1
S12_FILE = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")


@pytest.fixture(scope="module")
def s12(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("s12")
    store = sen12ms_store(root)
    from transfer_synth import _CACHE

    return store, _CACHE["s12-raw"]


def _simple10(p: np.ndarray) -> np.ndarray:
    return np.array([p[list(ix)].sum() for ix in SIMPLE])


def test_sen12ms_labels_from_the_pickle(s12: tuple[Path, Path]) -> None:
    store, raw = s12
    with open(raw / "labels" / "IGBP_probability_labels.pkl", "rb") as fh:
        pkl = pickle.load(fh)
    multi = open_target(store, get_protocol("sen12ms"))
    single = open_target(store, get_protocol("sen12ms", single_label=True))
    strict = open_target(store, get_protocol("sen12ms", threshold=0.5))
    assert multi.protocol.task == "multilabel" and single.protocol.task == "singlelabel"
    for i, pid in enumerate(multi.ids):
        s = _simple10(np.asarray(pkl[f"{pid}.tif"], dtype=np.float64))
        np.testing.assert_array_equal(multi.labels[i], (s >= 0.1).astype(np.float32))
        np.testing.assert_array_equal(strict.labels[i], (s >= 0.5).astype(np.float32))
        expected = np.zeros(10, dtype=np.float32)
        expected[int(np.argmax(s))] = 1
        np.testing.assert_array_equal(single.labels[i], expected)
    assert (single.labels.sum(1) == 1).all()
    assert (multi.labels.sum(1) > 1).any()  # truly multi-label data


def test_sen12ms_splits_official_lists_and_whole_scene_validation(s12: tuple[Path, Path]) -> None:
    store, raw = s12
    t = open_target(store, get_protocol("sen12ms"))
    official_test = {
        ln.strip().removesuffix(".tif")
        for ln in (raw / "splits" / "test_list.txt").read_text().splitlines()
        if ln.strip()
    }
    official_train = {
        ln.strip().removesuffix(".tif")
        for ln in (raw / "splits" / "train_list.txt").read_text().splitlines()
        if ln.strip()
    }
    ids = {k: {str(t.ids[i]) for i in v} for k, v in t.splits.items()}
    assert ids["test"] == official_test
    assert ids["train"] | ids["val"] == official_train and not ids["train"] & ids["val"]

    def scene(pid: str) -> str:
        season, rest = pid.split("_s2_")
        return f"{season}/{rest.split('_p')[0]}"

    val_scenes = {scene(p) for p in ids["val"]}
    assert val_scenes and not val_scenes & {scene(p) for p in ids["train"]}  # whole scenes held out
    assert "whole train scene" in t.split_source


def test_band_statistics_against_raw_tifs(s12: tuple[Path, Path]) -> None:
    store, raw = s12
    bands = ("B8A", "B02", "B11")  # an order unlike the file's
    t = open_target(store, get_protocol("sen12ms"), bands=bands)
    pos = t.splits["val"]
    stats = band_stats_from(t, pos, max_patches=10_000)
    cubes = []
    for pid in t.ids[pos]:
        season, rest = str(pid).split("_s2_")
        path = raw / season / f"s2_{rest.split('_p')[0]}" / f"{pid}.tif"
        cubes.append(tifffile.imread(path).astype(np.float64))  # (H, W, 13)
    cube = np.stack(cubes)
    for b in bands:
        v = cube[..., S12_FILE.index(b)]
        assert stats[b][0] == pytest.approx(v.mean(), rel=1e-9)
        assert stats[b][1] == pytest.approx(v.std(), rel=1e-6)


def test_protocol_mismatches_are_refused(s12: tuple[Path, Path], tmp_path: Path) -> None:
    store, _ = s12
    with pytest.raises(ProtocolError, match="holds sen12ms, not eurosat"):
        open_target(store, get_protocol("eurosat"))
    with pytest.raises(ProtocolError, match="no transfer protocol"):
        get_protocol("cifar10")
    with pytest.raises(ProtocolError, match="sen12ms only"):
        get_protocol("eurosat", threshold=0.2)
    with pytest.raises(ProtocolError, match=r"\(0, 1\]"):
        get_protocol("sen12ms", threshold=1.5)
    with pytest.raises(ProtocolError, match="does not exist"):
        open_target(tmp_path / "nothing", get_protocol("sen12ms"))


def test_eurosat_seeded_stratified_split_and_split_lists(tmp_path: Path) -> None:
    from landzoo.store.encode import encode
    from landzoo.synthetic import generate

    raw = generate("eurosat", tmp_path / "eu", patches=120, seed=3, progress=False)
    encode("eurosat", raw, tmp_path / "store", progress=False, workers=1)
    t = open_target(tmp_path / "store", get_protocol("eurosat"))
    assert t.protocol.loss == "ce" and t.protocol.score == "accuracy"
    cls = t.labels.argmax(1)
    all_pos = np.concatenate(list(t.splits.values()))
    assert sorted(all_pos.tolist()) == list(range(len(t.ids)))  # a partition
    for c in range(10):
        n_c = int((cls == c).sum())
        for split, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
            got = int((cls[t.splits[split]] == c).sum())
            assert abs(got - share * n_c) < 1.0, (c, split, got, n_c)
    again = open_target(tmp_path / "store", get_protocol("eurosat"))
    assert all(np.array_equal(t.splits[k], again.splits[k]) for k in t.splits)
    assert "stratified" in t.split_source

    # with the common split lists (names end in .jpg even for MS), the store's splits are used as they are
    ids = sorted(str(i) for i in t.ids)
    lists = {"train": ids[0::3], "val": ids[1::3], "test": ids[2::3]}
    for split, names in lists.items():
        (Path(raw) / f"eurosat-{split}.txt").write_text("".join(f"{n}.jpg\n" for n in names))
    encode("eurosat", raw, tmp_path / "store2", progress=False, workers=1)
    t2 = open_target(tmp_path / "store2", get_protocol("eurosat"))
    for split, names in lists.items():
        assert sorted(str(t2.ids[i]) for i in t2.splits[split]) == sorted(names)
    assert "store's splits" in t2.split_source


def test_resize_and_crop() -> None:
    x = torch.arange(2 * 3 * 10 * 10, dtype=torch.float32).view(2, 3, 10, 10)
    assert Resolution("resize", 6, 10).transform_px == 6
    crop = Resolution("crop", 6, 10)
    assert crop.transform_px == 10
    assert torch.equal(crop.apply(x, train=False), x[..., 2:8, 2:8])
    out = crop.apply(x, train=True, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 3, 6, 6)
    for i in range(2):  # each training crop is a window of its own sample
        hits = [(t, s) for t in range(5) for s in range(5) if torch.equal(out[i], x[i, :, t : t + 6, s : s + 6])]
        assert len(hits) == 1
    pad = Resolution("crop", 14, 10).apply(x, train=True)
    assert pad.shape == (2, 3, 14, 14) and torch.equal(pad[..., 2:12, 2:12], x)
    assert float(pad[..., :2, :].abs().sum()) == 0.0
    assert "pad 10 px" in Resolution("crop", 14, 10).describe()
    assert "21.3 m" in Resolution("resize", 120, 256).describe()
    with pytest.raises(LandzooError, match="unknown resolution mode"):
        Resolution("stretch", 6, 10)


def test_protocol_classes_come_from_the_contract() -> None:
    assert get_protocol("sen12ms").classes == contract.SIMPLE10
    assert get_protocol("eurosat").classes == contract.EUROSAT_CLASSES
    assert get_protocol("bigearthnet-v2").classes == contract.BEN19
