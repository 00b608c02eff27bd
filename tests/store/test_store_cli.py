"""The commands end to end on the synthetic BigEarthNet-v1 data and on the real example patches."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from _fixtures import shared_fixture
from landzoo.cli import main
from landzoo.datasets import open_dataset
from landzoo.store import Store, StoreDataset

EXAMPLE = ("bigearthnet_common", "BigEarthNet-S2-Example")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from landzoo.synthetic import generate

    return generate("bigearthnet-v1", tmp_path_factory.mktemp("raw"), patches=40, seed=3, workers=1, progress=False)


def test_encode_passes_reader_options(tmp_path: Path, capsys) -> None:
    """``-o drop_snow_cloud=false`` keeps the example's snow/cloud patch that the default drops."""
    root = shared_fixture(*EXAMPLE)
    kept, dropped = tmp_path / "kept", tmp_path / "dropped"
    base = ["encode", "--dataset", "bigearthnet-v1", str(root), "--bands", "rgb", "--quiet", "--out"]
    assert main([*base, str(dropped)]) == 0
    assert main([*base, str(kept), "-o", "drop_snow_cloud=false"]) == 0
    n_all = len(open_dataset("bigearthnet-v1", root, drop_snow_cloud=False).ids())
    n_clean = len(open_dataset("bigearthnet-v1", root).ids())
    assert n_all > n_clean
    assert len(StoreDataset(kept, bands="rgb")) == n_all and len(StoreDataset(dropped, bands="rgb")) == n_clean
    capsys.readouterr()
    assert main([*base, str(tmp_path / "x"), "-o", "drop_snow_clouds=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no option drop_snow_clouds" in err
    assert "(-o KEY=VALUE): split_files, s1_root, drop_snow_cloud." in err  # only what -o can set
    assert main([*base, str(tmp_path / "y"), "-o", "bands=rgb"]) == 2
    assert "own command-line flag" in capsys.readouterr().err


@pytest.mark.slow
def test_encode_info_verify_on_synthetic_bigearthnet(synthetic: Path, tmp_path: Path, capsys) -> None:
    store = tmp_path / "store"
    assert (
        main(
            ["encode", "--dataset", "bigearthnet-v1", str(synthetic), "--out", str(store), "--workers", "2", "--quiet"]
        )
        == 0
    )
    assert "40 patches" in capsys.readouterr().out
    reader = open_dataset("bigearthnet-v1", synthetic)
    ds = StoreDataset(store)
    batch = ds.get_batch(range(len(ds)))
    by_id = {pid: j for j, pid in enumerate(batch["id"])}
    assert sorted(by_id) == sorted(reader.ids())
    for i in range(0, len(reader), 7):
        sample = reader[i]
        j = by_id[sample["id"]]
        for g, arr in sample["image"].items():
            np.testing.assert_array_equal(batch["image"][g][j].numpy(), arr)
        np.testing.assert_array_equal(batch["label"][j].numpy(), sample["label"])
    s = Store(store)
    row = int(np.flatnonzero(s.ids == reader[0]["id"])[0])
    assert s.table.column("country")[row].as_py() == reader.read(0)["meta"]["country"]
    assert s.table.column("date")[row].as_py() == reader.read(0)["meta"]["date"]

    assert main(["info", str(store), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["patches"] == 40 and info["per_split"] == {k: v for k, v in sorted(reader.split_counts().items())}
    labels = np.stack([reader[i]["label"] for i in range(len(reader))]).sum(axis=0)
    assert [info["label_frequencies"][c]["all"] for c in reader.classes] == labels.tolist()
    assert info["size_on_disk_bytes"] == sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    assert main(["info", str(store)]) == 0
    assert "size" in capsys.readouterr().out

    assert main(["verify", str(store), "--quiet"]) == 0
    assert "OK, 40 records verified" in capsys.readouterr().out
    victim = s.shard_names[0]
    with open(store / "shards" / f"{victim}.10m.npy", "r+b") as fh:
        fh.seek(-5000, 2)
        fh.write(b"\xff" * 8)
    assert main(["verify", str(store), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    last = int(np.flatnonzero(s.shard_of == 0)[np.argmax(s.offset[s.shard_of == 0])])
    assert [d["id"] for d in res["damaged"]] == [str(s.ids[last])]


def test_encode_bad_file_cli_error_and_skip_bad(synthetic: Path, tmp_path: Path, capsys) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(synthetic, raw)
    patch = sorted((raw / "BigEarthNet-v1.0").iterdir())[5]
    band = patch / f"{patch.name}_B11.tif"
    band.write_bytes(band.read_bytes()[:300])  # truncated GeoTIFF
    code = main(["encode", "--dataset", "bigearthnet-v1", str(raw), "--out", str(tmp_path / "s1"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and patch.name in err and "B11.tif" in err
    assert not (tmp_path / "s1" / "manifest.json").exists()
    code = main(
        ["encode", "--dataset", "bigearthnet-v1", str(raw), "--out", str(tmp_path / "s2"), "--quiet", "--skip-bad"]
    )
    assert code == 0 and "skipped 1 bad patch" in capsys.readouterr().out
    report = json.loads((tmp_path / "s2" / "report.json").read_text())
    assert [s["id"] for s in report["skipped"]] == [patch.name] and report["skipped"][0]["path"].endswith("_B11.tif")
    assert len(Store(tmp_path / "s2")) == 39


def test_real_example_patches_round_trip(tmp_path: Path) -> None:
    root = shared_fixture(*EXAMPLE)
    store = tmp_path / "store"
    assert (
        main(["encode", "--dataset", "bigearthnet-v1", str(root), "--out", str(store), "--bands", "s2_all", "--quiet"])
        == 0
    )
    ds = StoreDataset(store, bands="s2_all")
    assert set(ds.groups) == {"10m", "20m", "60m"}
    batch = ds.get_batch(range(len(ds)))
    assert len(batch["id"]) == len(open_dataset("bigearthnet-v1", root).ids())
    for j, pid in enumerate(batch["id"]):
        for g, names in ds.groups.items():
            for c, name in enumerate(names):
                raw = tifffile.imread(root / pid / f"{pid}_{name}.tif")  # independent of rasterio and the reader
                np.testing.assert_array_equal(batch["image"][g][j, c].numpy(), raw)
    rgb = StoreDataset(store, bands="rgb").get_batch([0])["image"]["10m"][0]
    pid = batch["id"][0]
    for c, name in enumerate(("B04", "B03", "B02")):
        assert torch.equal(rgb[c], torch.from_numpy(tifffile.imread(root / pid / f"{pid}_{name}.tif")))
    assert main(["verify", str(store), "--quiet"]) == 0


@pytest.mark.slow
def test_bench_io_json(capsys) -> None:
    code = main(
        ["bench-io", "--patches", "48", "--batch-size", "16", "--seconds", "0.3", "--raw-seconds", "0.3", "--json"]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["hardware"], str) and report["hardware"]
    methods = [(r["method"], r["workers"]) for r in report["results"]]
    assert methods[0][0].startswith("rasterio") and methods[1][0].startswith("torchgeo")
    assert methods[2][0].startswith("landzoo reader")
    assert [w for m, w in methods if m == "store (memory-mapped)"] == [0, 1, 2]
    assert ("store (preloaded in RAM)", 0) in methods and ("store (memory-mapped, 1 copy thread)", 0) in methods
    assert ("store (memory-mapped, cold page mappings)", 0) in methods
    for r in report["results"]:
        assert set(r) >= {"method", "workers", "patches_per_s"}
        if r["patches_per_s"] is not None:
            assert r["patches_per_s"] > 0
    torchgeo = report["results"][1]
    try:
        import torchgeo
    except ImportError:
        assert torchgeo["patches_per_s"] is None and "not installed" in torchgeo["note"]
    assert report["encode"]["patches"] == 48 and report["encode"]["patches_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dataset", "options", "bands"),
    [("eurosat", {}, None), ("bigearthnet-v2", {"s1": True}, "s1_s2_10m_20m")],
)
def test_other_datasets_round_trip(tmp_path: Path, dataset: str, options: dict, bands: str | None) -> None:
    """EuroSAT (one 13-band 10 m group) and BigEarthNet v2 with Sentinel-1 (a float32 group first)."""
    from landzoo.store.encode import encode
    from landzoo.store.verify import verify_store
    from landzoo.synthetic import generate

    root = generate(dataset, tmp_path / "raw", patches=10, seed=1, workers=1, progress=False, **options)
    encode(dataset, root, tmp_path / "store", bands=bands, workers=2, progress=False)
    reader = open_dataset(dataset, root, bands=bands)
    ds = StoreDataset(tmp_path / "store")
    assert ds.groups == reader.groups and ds.classes == reader.classes
    batch = ds.get_batch(range(len(ds)))
    by_id = {pid: j for j, pid in enumerate(batch["id"])}
    assert sorted(by_id) == sorted(reader.ids())
    for i in range(len(reader)):
        sample = reader[i]
        for g, arr in sample["image"].items():
            got = batch["image"][g][by_id[sample["id"]]].numpy()
            assert got.dtype == arr.dtype
            np.testing.assert_array_equal(got, arr)
    assert verify_store(tmp_path / "store", progress=False).ok


def test_encode_refuses_reference_maps(tmp_path: Path, capsys) -> None:
    """The store keeps image, labels and meta only: ``-o reference_map=true`` is refused, not dropped silently."""
    from landzoo.synthetic import generate

    root = generate("bigearthnet-v2", tmp_path / "raw", patches=8, seed=2, workers=1, progress=False)
    assert (root / "Reference_Maps").is_dir()  # the reader could read them: only encode cannot keep them
    store = tmp_path / "store"
    args = ["encode", "--dataset", "bigearthnet-v2", str(root), "--out", str(store), "--quiet"]
    assert main([*args, "-o", "reference_map=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "encode does not store reference maps" in err
    assert not store.exists()
    assert main([*args, "-o", "reference_map=false"]) == 0
