"""Round trip through the project's readers, determinism by seed, and the `landzoo generate` command."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from landzoo import contract
from landzoo.cli import main
from landzoo.datasets import open_dataset
from landzoo.synthetic import Generated, GenerateError, generate, synthesize


def _gen(tmp: Path, dataset: str, n: int, seed: int = 11, **kw: object) -> Generated:
    return synthesize(dataset, tmp, n, seed, workers=1, progress=False, keep_arrays=True, **kw)


def _check_split_counts(reader_counts: dict, truth: Generated, rename: dict | None = None) -> None:
    rename = rename or {}
    assert reader_counts == dict(Counter(rename.get(t.split, t.split) for t in truth.patches))


def test_bigearthnet_v1_round_trip(tmp_path: Path) -> None:
    g = _gen(tmp_path, "bigearthnet-v1", 10, s1=True)
    truth = g.by_id()
    reader = open_dataset("bigearthnet-v1", g.root, classes="ben43", bands=(*contract.S2_L2A_BANDS, "VV", "VH"))
    assert len(reader) == 10 and sorted(reader.ids()) == sorted(truth)
    _check_split_counts(reader.split_counts(), g)
    ben19 = open_dataset("bigearthnet-v1", g.root)
    for i, sample in enumerate(reader.iter_samples()):
        t = truth[sample["id"]]
        assert tuple(sample["labels"]) == t.labels  # both in BEN43 (CLC code) order
        assert ben19.read(i)["labels"] == [
            c for c in contract.BEN19 if c in {contract.BEN43_TO_BEN19[x] for x in t.labels}
        ]
        assert ben19.read(i)["labels"]  # like every patch of the official splits
        assert sample["meta"]["split"] == t.split and sample["meta"]["country"] == t.meta["country"]
        names = [b for group in sample["image"] for b in reader.groups[group]]
        stacked = {
            b: arr for group, img in sample["image"].items() for b, arr in zip(reader.groups[group], img, strict=True)
        }
        assert set(names) == set(t.arrays)
        for band, arr in stacked.items():
            assert np.array_equal(arr, t.arrays[band]), (sample["id"], band)


def test_bigearthnet_v2_round_trip(tmp_path: Path) -> None:
    g = _gen(tmp_path, "bigearthnet-v2", 9, flagged=2)
    main_truth = [t for t in g.patches if t.meta["flag"] is None]
    reader = open_dataset("bigearthnet-v2", g.root, bands="s2_all", reference_map=True)
    assert len(reader) == 9 and reader.excluded == {"snow_cloud_or_shadow": 2}
    _check_split_counts(reader.split_counts(), Generated(g.dataset, g.root, g.seed, main_truth), {"validation": "val"})
    with_flagged = open_dataset("bigearthnet-v2", g.root, include_snow_cloud=True)
    assert len(with_flagged) == 11
    truth = g.by_id()
    for sample in reader.iter_samples():
        t = truth[sample["id"]]
        assert sorted(sample["labels"]) == list(t.labels)
        assert np.array_equal(sample["reference_map"], t.arrays["reference_map"])
        codes, counts = np.unique(sample["reference_map"], return_counts=True)
        unlabelled = sum(n for c, n in zip(codes, counts, strict=True) if contract.CLC_CODE_TO_BEN19[int(c)] is None)
        assert unlabelled / counts.sum() < 0.25  # the v2 pipeline drops patches 25% or more unlabelled
        for group, img in sample["image"].items():
            for band, arr in zip(reader.groups[group], img, strict=True):
                assert np.array_equal(arr, t.arrays[band])


def test_sen12ms_round_trip(tmp_path: Path) -> None:
    g = _gen(tmp_path, "sen12ms", 24, s1=True, patch_px=24)
    truth = g.by_id()
    reader = open_dataset(
        "sen12ms", g.root, patch_px=24, classes="igbp17", bands=(*contract.SEN12MS_S2_BANDS, "VV", "VH")
    )
    assert len(reader) == 24
    _check_split_counts(reader.split_counts(), g)
    from_lc = open_dataset("sen12ms", g.root, patch_px=24, classes="igbp17", label_source="lc")
    for i, sample in enumerate(reader.iter_samples()):
        t = truth[sample["id"]]
        expected = [c for c, f in zip(contract.IGBP17, t.meta["igbp_fractions"], strict=True) if f >= 0.1]
        assert sample["labels"] == expected and from_lc.read(i)["labels"] == expected
        assert set(t.labels) >= set(expected)
        for group, img in sample["image"].items():
            for band, arr in zip(reader.groups[group], img, strict=True):
                assert np.array_equal(arr, t.arrays[band])


def test_eurosat_round_trip(tmp_path: Path) -> None:
    g = _gen(tmp_path, "eurosat", 20)
    truth = g.by_id()
    reader = open_dataset("eurosat", g.root, bands=contract.EUROSAT_BANDS, geo=True)
    assert len(reader) == 20 and reader.split_counts() == {None: 20}
    for sample in reader.iter_samples():
        t = truth[sample["id"]]
        assert tuple(sample["labels"]) == t.labels == (sample["id"].rsplit("_", 1)[0],)
        assert sample["meta"]["crs"].startswith("EPSG:326")
        for band, arr in zip(sample["bands"], sample["image"]["10m"], strict=True):
            assert np.array_equal(arr, t.arrays[band])


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


@pytest.mark.parametrize(
    ("dataset", "n", "kw"), [("bigearthnet-v1", 6, {"s1": True}), ("sen12ms", 8, {"patch_px": 16})]
)
def test_same_seed_same_bytes_whatever_workers(tmp_path: Path, dataset: str, n: int, kw: dict) -> None:
    a = generate(dataset, tmp_path / "a", n, 5, workers=1, progress=False, **kw)
    b = generate(dataset, tmp_path / "b", n, 5, workers=2, progress=False, **kw)
    c = generate(dataset, tmp_path / "c", n, 6, workers=1, progress=False, **kw)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db and len(da) > n
    assert da != dc and sum(da.get(k) == v for k, v in dc.items()) < len(dc) // 4


def test_v2_and_eurosat_are_deterministic(tmp_path: Path) -> None:
    for dataset in ("bigearthnet-v2", "eurosat"):
        a = generate(dataset, tmp_path / dataset / "a", 5, 2, workers=2, progress=False)
        b = generate(dataset, tmp_path / dataset / "b", 5, 2, workers=1, progress=False)
        assert _digest(a) == _digest(b)


def test_bad_requests_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GenerateError, match="positive integer"):
        generate("eurosat", tmp_path / "x", 0, 1)
    with pytest.raises(GenerateError, match="unknown dataset"):
        generate("bigearthnet-v3", tmp_path / "x", 1, 1)
    with pytest.raises(GenerateError, match="takes no option"):
        generate("eurosat", tmp_path / "x", 1, 1, patch_px=32)
    with pytest.raises(GenerateError, match="patch_px"):
        generate("sen12ms", tmp_path / "x", 1, 1, patch_px=3)
    with pytest.raises(GenerateError, match="at most 519,284"):
        generate("bigearthnet-v1", tmp_path / "x", 519_285, 1)
    with pytest.raises(GenerateError, match="flagged"):
        generate("bigearthnet-v2", tmp_path / "x", 1, 1, flagged=-1)
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_cli_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eu"
    assert main(["generate", "eurosat", "--out", str(out), "--patches", "3", "--seed", "4", "--workers", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert len(list((out / "EuroSAT_MS").rglob("*.tif"))) == 3
    (out / "notes.txt").write_text("keep me")
    assert main(["generate", "eurosat", "--out", str(out), "--patches", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("landzoo generate: error:") and "not empty" in err and "\n" not in err
    assert main(["generate", "eurosat", "--out", str(out), "--patches", "2", "--overwrite", "--workers", "1"]) == 0
    assert len(list((out / "EuroSAT_MS").rglob("*.tif"))) == 2 and (out / "notes.txt").read_text() == "keep me"
    assert main(["generate", "eurosat", "--out", str(tmp_path / "n"), "--patches", "0"]) == 2
    assert "positive integer" in capsys.readouterr().err
    assert main(["generate", "eurosat", "--out", str(tmp_path / "n"), "--patches", "1", "--s1"]) == 2
    assert main(["generate", "bigearthnet-v1", "--out", str(tmp_path / "n"), "--patches", "1", "--patch-px", "8"]) == 2
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "--patches" in capsys.readouterr().out
