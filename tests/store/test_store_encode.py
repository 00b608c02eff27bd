"""Encoding: layout and content against independent reads, determinism, resumability (kill -9), bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from store_fakes import SPLIT_CYCLE, make_reader

from landzoo import __version__, contract
from landzoo.datasets import PatchError
from landzoo.store.encode import encode_reader
from landzoo.store.format import StoreError

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (relative names)."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_encode_layout_and_content(tmp_path: Path) -> None:
    reader = make_reader(tmp_path / "raw", n=30)
    res = encode_reader(reader, tmp_path / "store", shard_records=7, progress=False)
    assert (res.total, res.encoded, res.skipped) == (30, 30, 0)
    store = tmp_path / "store"
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["landzoo_version"] == __version__
    assert manifest["dataset"] == "fake"
    assert manifest["bands"] == list(contract.BAND_SELECTIONS["s2_10m_20m"])
    assert manifest["groups"]["10m"]["bands"] == ["B02", "B03", "B04", "B08"]
    assert manifest["groups"]["20m"]["bands"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert manifest["groups"]["10m"]["shape"] == [4, 12, 12] and manifest["groups"]["20m"]["shape"] == [6, 6, 6]
    assert manifest["groups"]["10m"]["dtype"] == "uint16"
    assert manifest["class_set"] == "ben19" and manifest["classes"] == list(contract.BEN19)
    expected_splits = {}
    for i in range(30):
        s = SPLIT_CYCLE[i % len(SPLIT_CYCLE)] or "none"
        expected_splits[s] = expected_splits.get(s, 0) + 1
    assert manifest["counts"]["per_split"] == expected_splits
    assert not list(store.rglob("*.tmp"))

    index = pq.read_table(store / "index.parquet").to_pylist()
    assert len(index) == 30
    # store order: train, val, test, none; reader order within a split
    order = [s for s in ("train", "val", "test", None) for i in range(30) if SPLIT_CYCLE[i % 6] == s]
    assert [r["split"] for r in index] == order
    for row in index:
        i = int(row["id"][1:])
        assert row["split"] == SPLIT_CYCLE[i % 6]
        assert row["labels"] == reader.label_names(i)
        assert row["label"] == contract.multi_hot(reader.label_names(i), contract.BEN19).tolist()
        assert row["country"] == ["Austria", "Finland", "Portugal"][i % 3]
        assert json.loads(row["meta"])["n"] == i
        # pixels: an independent read of the shard files, and an independent CRC
        arrays = reader.arrays(i)
        crc = 0
        for g in ("10m", "20m"):
            shard = np.load(store / "shards" / f"{row['shard']}.{g}.npy")
            np.testing.assert_array_equal(shard[row["offset"]], arrays[g])
            crc = zlib.crc32(arrays[g].tobytes(), crc)
        assert row["checksum"] == crc
    assert {r["shard"] for r in index} == {s["name"] for s in manifest["shards"]}
    assert max(s["capacity"] for s in manifest["shards"]) == 7


def test_same_store_whatever_the_workers_and_rerun_is_a_noop(tmp_path: Path) -> None:
    reader = make_reader(tmp_path / "raw", n=50)
    encode_reader(reader, tmp_path / "a", shard_records=8, workers=1, progress=False)
    encode_reader(reader, tmp_path / "b", shard_records=8, workers=2, progress=False)
    a = tree(tmp_path / "a")
    assert a == tree(tmp_path / "b")
    res = encode_reader(reader, tmp_path / "a", shard_records=8, workers=2, progress=False)
    assert res.encoded == 0 and res.resumed_shards == len(json.loads(a["manifest.json"])["shards"])
    assert tree(tmp_path / "a") == a


def test_existing_folder_with_other_plan_or_foreign_content_is_refused(tmp_path: Path) -> None:
    reader = make_reader(tmp_path / "raw", n=12)
    encode_reader(reader, tmp_path / "store", shard_records=4, progress=False)
    other = make_reader(tmp_path / "raw", n=12, bands="rgb")
    with pytest.raises(StoreError, match=r"other input or options.*bands"):
        encode_reader(other, tmp_path / "store", shard_records=4, progress=False)
    # reader options change labels without changing ids (e.g. a label threshold): a resume must match them too
    opts = tmp_path / "opts"
    encode_reader(reader, opts, shard_records=4, progress=False, reader_options={"threshold": 0.1})
    with pytest.raises(StoreError, match=r"other input or options.*reader_options"):
        encode_reader(reader, opts, shard_records=4, progress=False, reader_options={"threshold": 0.9})
    assert encode_reader(reader, opts, shard_records=4, progress=False, reader_options={"threshold": 0.1}).encoded == 0
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a landzoo store"):
        encode_reader(reader, foreign, progress=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_bad_patch_stops_with_its_name_and_nothing_half_written(tmp_path: Path, workers: int) -> None:
    reader = make_reader(tmp_path / "raw", n=40, bad_read=[21])
    with pytest.raises(PatchError, match=r"patch P0021 \(.*P0021_B02\.tif\): unreadable GeoTIFF") as info:
        encode_reader(reader, tmp_path / "store", shard_records=6, workers=workers, progress=False)
    assert info.value.patch_id == "P0021"
    store = tmp_path / "store"
    assert not (store / "manifest.json").exists() and not (store / "index.parquet").exists()
    assert not list(store.rglob("*.tmp"))
    index = [i for s in ("train", "val", "test", None) for i in range(40) if SPLIT_CYCLE[i % 6] == s]
    bad_shard = f"train-{index.index(21) // 6:05d}"
    assert not (store / "shards" / f"{bad_shard}.done.json").exists()
    for marker in (store / "shards").glob("*.done.json"):  # whatever was completed is complete and consistent
        data = json.loads(marker.read_text())
        assert all(r["id"] != "P0021" for r in data["records"])
        for g, f in data["files"].items():
            assert (store / "shards" / f["name"]).stat().st_size == f["bytes"], g


def test_skip_bad_reports_patches_and_reasons(tmp_path: Path) -> None:
    reader = make_reader(tmp_path / "raw", n=40, bad_read=[3, 21], bad_index=[8], on_bad="skip")
    res = encode_reader(reader, tmp_path / "store", shard_records=6, workers=2, skip_bad=True, progress=False)
    assert (res.total, res.skipped) == (37, 3)
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    skipped = {s["id"]: s for s in report["skipped"]}
    assert set(skipped) == {"P0003", "P0008", "P0021"}
    assert skipped["P0003"]["reason"] == "unreadable GeoTIFF (fake)" and skipped["P0003"]["stage"] == "read"
    assert skipped["P0003"]["path"].endswith("P0003_B02.tif")
    assert skipped["P0008"]["reason"] == "patch folder is missing" and skipped["P0008"]["stage"] == "index"
    ids = pq.read_table(tmp_path / "store" / "index.parquet").column("id").to_pylist()
    assert len(ids) == 37 and not {"P0003", "P0008", "P0021"} & set(ids)
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["counts"]["skipped"] == 3 and manifest["counts"]["total"] == 37


def test_index_time_bad_patch_without_skip_stops(tmp_path: Path) -> None:
    reader = make_reader(tmp_path / "raw", n=10, bad_index=[4], on_bad="skip")
    with pytest.raises(PatchError, match=r"P0004.*patch folder is missing"):
        encode_reader(reader, tmp_path / "store", progress=False)
    assert not (tmp_path / "store").exists()


# --------------------------------------------------------------------------------------------------
# kill -9 at any moment, then the same command again: identical to an uninterrupted run
# --------------------------------------------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path[:0] = [{here!r}, {src!r}]
    from pathlib import Path
    from store_fakes import make_reader
    from landzoo.store.encode import encode_reader
    reader = make_reader(Path({raw!r}), n=120, px=24, delay={delay})
    encode_reader(reader, {out!r}, shard_records=10, workers=2, progress=False)
    print("done")
    """
)


def _encode_process(raw: Path, out: Path, delay: float) -> subprocess.Popen:
    code = SCRIPT.format(here=str(HERE), src=str(SRC), raw=str(raw), out=str(out), delay=delay)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_uninterrupted_store(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    reference = tmp_path / "reference"
    assert _encode_process(raw, reference, 0.0).wait(timeout=120) == 0
    expected = tree(reference)
    shards = len(json.loads(expected["manifest.json"])["shards"])

    # kill at three moments: during start-up/first shard, after some shards, late in the run
    for k, wait_markers in enumerate((0, 2, shards - 3)):
        out = tmp_path / f"killed{k}"
        proc = _encode_process(raw, out, 0.01)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "shards").glob("*.done.json"))) >= wait_markers and (out / "plan.json").exists():
                break
            time.sleep(0.01)
        time.sleep(0.03 if k == 1 else 0.0)  # k=1: most likely in the middle of a shard
        assert proc.poll() is None, "the encode finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert not (out / "manifest.json").exists()
        time.sleep(0.2)  # let the workers (SIGKILLed by PDEATHSIG) go
        rerun = _encode_process(raw, out, 0.0)
        _, stderr = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, stderr.decode()
        assert tree(out) == expected, f"kill {k}: store differs from the uninterrupted one"


def test_group_order_follows_the_band_selection_not_the_alphabet(tmp_path: Path) -> None:
    """Manifest JSON has sorted keys; the group order (channel order, checksum chain) must survive that."""
    from landzoo.store import StoreDataset, verify_store

    reader = make_reader(tmp_path / "raw", n=8, bands="B05,B06,B02")
    encode_reader(reader, tmp_path / "store", progress=False)
    manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
    assert manifest["group_order"] == ["20m", "10m"]
    row = pq.read_table(tmp_path / "store" / "index.parquet").to_pylist()[0]
    arrays = reader.arrays(int(row["id"][1:]))
    assert row["checksum"] == zlib.crc32(arrays["10m"].tobytes(), zlib.crc32(arrays["20m"].tobytes()))
    assert verify_store(tmp_path / "store", progress=False).ok
    ds = StoreDataset(tmp_path / "store")
    assert list(ds.groups) == ["20m", "10m"] and ds.bands == ("B05", "B06", "B02")


def test_a_second_encode_of_the_same_store_is_refused_while_one_runs(tmp_path: Path) -> None:
    import fcntl

    reader = make_reader(tmp_path / "raw", n=8)
    encode_reader(reader, tmp_path / "store", progress=False)
    with open(tmp_path / "store" / ".encode.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running encode holds it
        with pytest.raises(StoreError, match="another landzoo encode is writing"):
            encode_reader(reader, tmp_path / "store", progress=False)
