"""Reading a store: batches against the raw reader, band/class contract, samplers and DDP, damage, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from store_fakes import SPLIT_CYCLE, make_reader

from landzoo import contract
from landzoo.store.datamodule import StoreDataModule
from landzoo.store.encode import encode_reader
from landzoo.store.format import DamagedRecordError, StoreError
from landzoo.store.reader import Store, StoreBatchSampler, StoreDataset, batch_plan
from landzoo.store.verify import verify_store

N = 60


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("store")
    reader = make_reader(tmp / "raw", n=N, px=12)
    encode_reader(reader, tmp / "store", shard_records=9, progress=False)
    return tmp / "store", reader


def _split_ids(split: str) -> list[str]:
    return [f"P{i:04d}" for i in range(N) if SPLIT_CYCLE[i % 6] == split]


def test_batch_matches_raw_reader(encoded) -> None:
    store, reader = encoded
    ds = StoreDataset(store, "train")
    assert list(ds.ids) == _split_ids("train")
    assert ds.groups == {"10m": ("B02", "B03", "B04", "B08"), "20m": ("B05", "B06", "B07", "B8A", "B11", "B12")}
    batch = ds.get_batch([7, 0, 12, 3])
    assert batch["index"].tolist() == [0, 3, 7, 12]  # sorted within the batch
    assert batch["id"] == [ds.ids[i] for i in (0, 3, 7, 12)]
    assert batch["image"]["10m"].dtype == torch.uint16 and batch["image"]["10m"].shape == (4, 4, 12, 12)
    assert batch["image"]["20m"].shape == (4, 6, 6, 6)
    assert batch["label"].dtype == torch.float32 and batch["label"].shape == (4, 19)
    for j, pid in enumerate(batch["id"]):
        i = int(pid[1:])
        for g, arr in reader.arrays(i).items():
            np.testing.assert_array_equal(batch["image"][g][j].numpy(), arr)
        np.testing.assert_array_equal(
            batch["label"][j].numpy(), contract.multi_hot(reader.label_names(i), contract.BEN19)
        )
    one = ds[5]
    np.testing.assert_array_equal(one["image"]["20m"].numpy(), reader.arrays(int(one["id"][1:]))["20m"])


def test_band_selection_by_name_and_contract_errors(encoded) -> None:
    store, reader = encoded
    ds = StoreDataset(store, "val", bands="B04,B03,B02")
    assert ds.groups == {"10m": ("B04", "B03", "B02")}
    b = ds.get_batch(range(len(ds)))
    for j, pid in enumerate(b["id"]):
        raw = reader.arrays(int(pid[1:]))["10m"]  # stored order B02,B03,B04,B08
        np.testing.assert_array_equal(b["image"]["10m"][j].numpy(), raw[[2, 1, 0]])
    with pytest.raises(StoreError, match=r"no band.*B01.*re-encode with --bands"):
        StoreDataset(store, "val", bands="s2_all")
    with pytest.raises(StoreError, match=r"class set 'ben19'.*'ben43' was asked"):
        StoreDataset(store, "val", classes="ben43")
    with pytest.raises(StoreError, match="never relabel"):
        StoreDataset(store, "val", classes=tuple(reversed(contract.BEN19)))
    assert StoreDataset(store, "val", classes=contract.BEN19).classes == contract.BEN19
    with pytest.raises(StoreError, match="no patches in split 'nosuch'"):
        StoreDataset(store, "nosuch")


def test_preloaded_modes_equal_memory_mapped(encoded) -> None:
    store, _ = encoded
    idx = [4, 1, 9, 2]
    ref = StoreDataset(store, "train").get_batch(idx)
    for mode in ("ram", "device"):
        b = StoreDataset(store, "train", mode=mode, device="cpu").get_batch(idx)
        assert b["id"] == ref["id"]
        for g in ref["image"]:
            assert torch.equal(b["image"][g], ref["image"][g])
        assert torch.equal(b["label"], ref["label"])
    # the accelerator path (index_select on the device) on torch's data-less "meta" device: shapes and dtypes
    meta = StoreDataset(store, "train", mode="device", device="meta").get_batch(idx)
    assert meta["image"]["10m"].device.type == "meta" and meta["image"]["10m"].shape == ref["image"]["10m"].shape
    assert meta["image"]["20m"].dtype == torch.uint16 and meta["id"] == ref["id"]


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_reads_every_patch_once_per_epoch(encoded, workers: int) -> None:
    store, reader = encoded
    ds = StoreDataset(store, "train")
    loader = ds.loader(4, shuffle=True, seed=3, num_workers=workers)
    epochs = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        seen = []
        for batch in loader:
            seen += batch["id"]
            j = len(batch["id"]) // 2
            np.testing.assert_array_equal(
                batch["image"]["10m"][j].numpy(), reader.arrays(int(batch["id"][j][1:]))["10m"]
            )
        assert sorted(seen) == sorted(ds.ids.tolist())
        epochs.append(seen)
    assert epochs[0] != epochs[1]  # reshuffled per epoch


@pytest.mark.parametrize(
    ("n", "batch", "world"), [(100, 8, 2), (17, 8, 2), (33, 4, 4), (65, 16, 2), (7, 3, 3), (10, 100, 2)]
)
def test_batch_plan_ranks_are_disjoint_and_cover_the_split(n: int, batch: int, world: int) -> None:
    for epoch in range(2):
        per_rank = [batch_plan(n, batch, num_replicas=world, rank=r, seed=5, epoch=epoch) for r in range(world)]
        flat = [np.concatenate(p) for p in per_rank]
        assert len({len(p) for p in per_rank}) == 1  # same number of batches on every rank (DDP needs it)
        assert all(len(b) >= 1 and len(b) <= batch for p in per_rank for b in p)
        union = np.concatenate(flat)
        assert len(union) == n and sorted(union.tolist()) == list(range(n))  # disjoint and complete
        again = [batch_plan(n, batch, num_replicas=world, rank=r, seed=5, epoch=epoch) for r in range(world)]
        assert all(
            np.array_equal(a, b) for p, q in zip(per_rank, again, strict=True) for a, b in zip(p, q, strict=True)
        )
        sampler = StoreBatchSampler(n, batch, num_replicas=world, rank=0, seed=5)
        sampler.set_epoch(epoch)
        assert len(sampler) == len(per_rank[0]) and [list(b) for b in per_rank[0]] == list(sampler)
    e0 = np.concatenate(batch_plan(n, batch, num_replicas=world, rank=0, seed=5, epoch=0))
    e1 = np.concatenate(batch_plan(n, batch, num_replicas=world, rank=0, seed=5, epoch=1))
    assert not np.array_equal(e0, e1)


def test_batch_plan_drop_last_and_impossible_splits() -> None:
    plans = [batch_plan(21, 4, num_replicas=2, rank=r, drop_last=True) for r in range(2)]
    assert all(len(b) == 4 for p in plans for b in p) and sum(len(p) for p in plans) == 4
    with pytest.raises(StoreError, match="cannot be split over 3 ranks"):
        batch_plan(2, 4, num_replicas=3, rank=0)


def test_datamodule_under_simulated_ddp(encoded) -> None:
    store, _ = encoded
    seen = {}
    for rank in range(2):
        dm = StoreDataModule(store, batch_size=4, seed=1)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        dm.setup("fit")
        for role, loader in (("train", dm.train_dataloader()), ("val", dm.val_dataloader())):
            ids = [i for batch in loader for i in batch["id"]]
            seen.setdefault(role, []).append(ids)
    for role, split in (("train", "train"), ("val", "val")):
        a, b = seen[role]
        assert not set(a) & set(b)
        assert sorted(a + b) == sorted(_split_ids(split))
    assert StoreDataModule(store).groups["10m"] == ("B02", "B03", "B04", "B08")


@pytest.mark.slow
def test_datamodule_in_a_lightning_trainer(encoded) -> None:
    import lightning as L

    from landzoo.transforms import InputTransform

    store, _ = encoded

    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.inp = InputTransform("s2_10m_20m", 12, footprint={"10m": 12, "20m": 6})  # the fake store's patches
            self.head = torch.nn.Linear(10, 19)
            self.epochs_seen: list[list[str]] = []

        def training_step(self, batch, _):
            x = self.inp(batch["image"]).mean(dim=(2, 3))
            return torch.nn.functional.binary_cross_entropy_with_logits(self.head(x), batch["label"])

        def on_train_epoch_start(self) -> None:
            self.epochs_seen.append([])

        def on_train_batch_start(self, batch, _) -> None:
            self.epochs_seen[-1] += batch["id"]

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = StoreDataModule(store, batch_size=8)
    model = Tiny()
    model.inp.check_groups(dm.groups)
    trainer = L.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
    )
    trainer.fit(model, datamodule=dm)
    assert len(model.epochs_seen) == 2
    for ids in model.epochs_seen:
        assert sorted(ids) == sorted(_split_ids("train"))
    assert model.epochs_seen[0] != model.epochs_seen[1]  # Lightning called set_epoch


# --------------------------------------------------------------------------------------------------
# damage
# --------------------------------------------------------------------------------------------------


def _copy_store(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_damaged_record_is_named_by_verify_and_on_read(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    s = Store(store)
    victim = int(np.flatnonzero(s.split == "train")[4])
    shard, offset, pid = s.shard_names[s.shard_of[victim]], int(s.offset[victim]), str(s.ids[victim])
    path = store / "shards" / f"{shard}.20m.npy"
    mm = np.load(path, mmap_mode="r+")
    mm[offset, 2, 3, 3] ^= 0x0100
    mm.flush()
    del mm
    res = verify_store(store, progress=False)
    assert not res.ok and [d["id"] for d in res.damaged] == [pid]
    assert "checksum mismatch" in res.damaged[0]["reason"]
    ds = StoreDataset(store, "train")  # verify="once" is the default
    pos = ds.ids.tolist().index(pid)
    ds.get_batch([pos - 1])  # a sound record still reads
    with pytest.raises(DamagedRecordError, match=f"patch {pid} .*checksum mismatch") as info:
        ds.get_batch([0, pos, pos + 1])
    assert info.value.patch_id == pid


def test_truncated_shard_is_named_by_verify_and_on_read(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    s = Store(store)
    shard = s.shard_names[0]
    path = store / "shards" / f"{shard}.10m.npy"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 100)
    in_shard = sorted(str(i) for i in s.ids[s.shard_of == 0])
    res = verify_store(store, progress=False)
    assert sorted(d["id"] for d in res.damaged) == in_shard
    assert all("truncated" in d["reason"] for d in res.damaged)
    ds = StoreDataset(store, "train")
    first = ds.ids.tolist().index(in_shard[0])
    with pytest.raises(DamagedRecordError, match=f"patch {in_shard[0]} .*truncated"):
        ds.get_batch([first])


def test_incomplete_store_is_refused(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    (store / "manifest.json").unlink()
    with pytest.raises(StoreError, match=r"unfinished landzoo store.*run the same `landzoo encode`"):
        StoreDataset(store)
    assert not verify_store(store, progress=False).ok


def test_index_disagreeing_with_marker_is_reported(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    marker = sorted((store / "shards").glob("*.done.json"))[0]
    data = json.loads(marker.read_text())
    data["records"][0]["checksum"] ^= 1
    marker.write_text(json.dumps(data))
    res = verify_store(store, progress=False)
    assert [d["id"] for d in res.damaged] == [data["records"][0]["id"]]


def _rewrite_index(store: Path, column: str, row: int, value: object, *, reseal: bool = True) -> str:
    """Change one cell of index.parquet; returns the patch id of that row.

    ``reseal`` records the new file's SHA-256 in the manifest and seals it again, as a consistent forgery
    would: the checks below the checksums (labels against the shard markers, offsets) must still catch it.
    """
    import hashlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    from landzoo.files import sealed
    from landzoo.store.format import canonical_json

    table = pq.read_table(store / "index.parquet")
    values = table.column(column).to_pylist()
    values[row] = value
    table = table.set_column(
        table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type)
    )
    pq.write_table(table, store / "index.parquet")
    if reseal:
        manifest = json.loads((store / "manifest.json").read_text())
        manifest["index_sha256"] = hashlib.sha256((store / "index.parquet").read_bytes()).hexdigest()
        (store / "manifest.json").write_bytes(canonical_json(sealed(manifest)))
    return str(table.column("id")[row])


def test_damaged_label_in_the_index_is_reported_by_verify(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    import pyarrow.parquet as pq

    label = pq.read_table(store / "index.parquet").column("label")[5].as_py()
    victim = _rewrite_index(store, "label", 5, [1 - v for v in label])  # pixels and checksums untouched
    res = verify_store(store, progress=False)
    assert [d["id"] for d in res.damaged] == [victim] and "label" in res.damaged[0]["reason"]


def test_edited_index_is_refused_on_open_and_by_verify(encoded, tmp_path: Path) -> None:
    """A label flipped in index.parquet (pixels untouched) changes what is scored: its SHA-256 refuses it."""
    store = _copy_store(encoded[0], tmp_path / "store")
    import pyarrow.parquet as pq

    label = pq.read_table(store / "index.parquet").column("label")[5].as_py()
    _rewrite_index(store, "label", 5, [1 - v for v in label], reseal=False)
    with pytest.raises(StoreError, match=r"index\.parquet does not match the SHA-256 its manifest records"):
        StoreDataset(store)
    res = verify_store(store, progress=False)
    assert not res.ok and any("index.parquet does not match" in p for p in res.problems)


def test_edited_manifest_is_refused_on_open_and_by_verify(encoded, tmp_path: Path) -> None:
    """Two band names swapped in manifest.json would relabel channels: the manifest's seal refuses it."""
    store = _copy_store(encoded[0], tmp_path / "store")
    manifest = json.loads((store / "manifest.json").read_text())
    bands = manifest["groups"]["10m"]["bands"]
    bands[0], bands[1] = bands[1], bands[0]
    (store / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    with pytest.raises(StoreError, match=r"manifest\.json was edited or damaged after encoding"):
        StoreDataset(store)
    res = verify_store(store, progress=False)
    assert not res.ok and any("manifest.json was edited" in p for p in res.problems)
    del manifest["seal"]
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="its seal was removed"):
        StoreDataset(store)


def test_edited_plan_is_reported_by_verify(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    plan = json.loads((store / "plan.json").read_text())
    plan["bands"] = list(reversed(plan["bands"]))
    (store / "plan.json").write_text(json.dumps(plan))
    res = verify_store(store, progress=False)
    assert res.problems == [f"{store / 'plan.json'} is not the plan this store was encoded with (edited or damaged)"]


def test_offset_outside_its_shard_is_refused_on_open(encoded, tmp_path: Path) -> None:
    store = _copy_store(encoded[0], tmp_path / "store")
    victim = _rewrite_index(store, "offset", 3, 99_999)
    with pytest.raises(StoreError, match=rf"patch {victim} has offset 99999 outside shard"):
        StoreDataset(store)


# --------------------------------------------------------------------------------------------------
# memory: flat across epochs, mapped pages released
# --------------------------------------------------------------------------------------------------


def _rss() -> dict[str, int]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024
    return out


def _epoch_memory(store: str) -> dict[str, Any]:
    """Read ``store`` for 4 epochs (pages never released): RssAnon after each, RssFile growth, and after release()."""
    ds = StoreDataset(store, None, release_bytes=1 << 40)
    loader = ds.loader(32, shuffle=True)
    anon = []
    file_before = _rss()["RssFile"]
    for epoch in range(4):
        loader.sampler.set_epoch(epoch)
        for _ in loader:
            pass
        anon.append(_rss()["RssAnon"])
    grown = _rss()["RssFile"] - file_before
    ds.release()
    return {"anon": anon, "grown": grown, "after_release": _rss()["RssFile"] - file_before}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for RSS")
def test_memory_is_flat_across_epochs_and_mapped_pages_are_released(tmp_path: Path) -> None:
    reader = make_reader(tmp_path / "raw", n=400, px=120)  # 400 x 158 KB = 63 MB of shards
    encode_reader(reader, tmp_path / "store", shard_records=100, progress=False)
    # Measured in a fresh reading process whose allocator returns every freed batch buffer to the OS: glibc's
    # default keeps up to twice the largest freed block (~10 MB for these 5 MB batches) as free heap, so RssAnon
    # would move by that much between epochs whatever the dataset does. A fixed mmap threshold (which turns the
    # adaptive one off) leaves only the memory still in use, which is what "no growth" is about.
    here = Path(__file__).resolve().parent
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(128 << 10)}
    code = (
        f"import json, sys; sys.path[:0] = [{str(here)!r}, {str(here.parent)!r}]; import torch; "
        "torch.set_num_threads(1); from test_store_reader import _epoch_memory; "
        "print(json.dumps(_epoch_memory(sys.argv[1])))"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    m = json.loads(run.stdout.strip().splitlines()[-1])
    assert m["grown"] > 40 << 20  # without release the mapped pages count (the whole store was read)
    assert m["anon"][-1] - m["anon"][1] < 8 << 20  # no growth across epochs
    assert m["after_release"] < 16 << 20
    small = StoreDataset(tmp_path / "store", None, release_bytes=4 << 20)
    before = _rss()["RssFile"]
    peak = 0
    for batch in small.loader(32, shuffle=True):
        peak = max(peak, _rss()["RssFile"] - before)
        del batch
    assert peak < 16 << 20  # RSS bounded by release_bytes, not by the store size
    # A split no larger than the budget keeps its pages: dropping them would only re-fault them on the next read.
    split_bytes = 400 * 158_400
    for budget, expected in ((split_bytes, 0), (split_bytes - 1, 1)):  # fits / one byte over
        ds = StoreDataset(tmp_path / "store", None, release_bytes=budget)
        released = []
        ds.release = lambda released=released: released.append(1)  # type: ignore[method-assign]
        for _ in ds.loader(32):  # one epoch reads exactly the split's bytes
            pass
        assert len(released) == expected, budget


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["mmap", "ram"])
def test_workers_forked_after_the_parent_read_with_threads(encoded, mode: str) -> None:
    """The parent's copy threads and maps must not leak into forked loader workers (that would hang or mix)."""
    store, reader = encoded
    ds = StoreDataset(store, "train", mode=mode, threads=2)
    ds.get_batch(range(len(ds)))  # the parent now has maps and a thread pool
    ids = []
    for batch in ds.loader(5, num_workers=2):
        ids += batch["id"]
        np.testing.assert_array_equal(batch["image"]["20m"][-1].numpy(), reader.arrays(int(batch["id"][-1][1:]))["20m"])
    assert sorted(ids) == sorted(ds.ids.tolist())
