"""A store split is an ordinary map-style dataset: torch's own DataLoader with the default collate reads it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from store_fakes import make_reader
from torch.utils.data import DataLoader, default_collate

from landzoo import contract
from landzoo.store.encode import encode_reader
from landzoo.store.reader import StoreDataset

N = 40


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    tmp = tmp_path_factory.mktemp("store")
    reader = make_reader(tmp / "raw", n=N, px=12)
    encode_reader(reader, tmp / "store", shard_records=7, progress=False)
    return tmp / "store", reader


@pytest.mark.parametrize("workers", [0, 2])
def test_plain_dataloader_with_default_collate(store, workers: int) -> None:
    path, reader = store
    ds = StoreDataset(path, None)
    loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=workers, generator=torch.Generator().manual_seed(3))
    seen: list[str] = []
    for batch in loader:
        assert set(batch) == {"image", "label", "index", "id"}
        assert batch["image"]["10m"].shape[1:] == (4, 12, 12) and batch["image"]["10m"].dtype == torch.uint16
        assert batch["image"]["20m"].shape[1:] == (6, 6, 6)
        assert batch["label"].shape[1:] == (19,) and batch["label"].dtype == torch.float32
        assert batch["index"].dtype == torch.int64 and isinstance(batch["id"], list)
        # every sample is the patch its id names, independently of the store (the raw reader's arrays)
        for j, pid in enumerate(batch["id"]):
            i = int(pid[1:])
            assert ds.ids[int(batch["index"][j])] == pid
            for g, arr in reader.arrays(i).items():
                np.testing.assert_array_equal(batch["image"][g][j].numpy(), arr)
            np.testing.assert_array_equal(
                batch["label"][j].numpy(), contract.multi_hot(reader.label_names(i), contract.BEN19)
            )
        seen += batch["id"]
    assert sorted(seen) == sorted(ds.ids.tolist())  # each patch once per epoch
    assert seen != sorted(seen)  # shuffled


def test_batches_keep_the_sampler_order_and_equal_collated_single_items(store) -> None:
    path, _ = store
    ds = StoreDataset(path, None)
    order = [17, 3, 3, -1, 0, 25]  # unsorted, a repeat (sampling with replacement) and a negative index
    got = default_collate(ds.__getitems__(order))
    want = default_collate([ds[i] for i in order])
    assert got["id"] == want["id"] == [ds.ids[i] for i in order]
    assert got["index"].tolist() == [17, 3, 3, N - 1, 0, 25]
    for g in want["image"]:
        assert torch.equal(got["image"][g], want["image"][g])
    assert torch.equal(got["label"], want["label"])
    with pytest.raises(IndexError):
        ds.__getitems__([0, N])


def test_landzoo_loader_still_reads_whole_batches(store) -> None:
    path, _ = store
    ds = StoreDataset(path, None)
    batch = next(iter(ds.loader(batch_size=16, shuffle=False)))
    assert batch["index"].tolist() == list(range(16)) and batch["image"]["10m"].shape == (16, 4, 12, 12)
