"""The raw readers with a plain ``torch.utils.data.DataLoader`` and its default collate (issue 14).

Every reader, 0 and 2 loader workers: the batch holds ``id``, ``image`` groups and a fixed-size multi-hot
``label``; the pixels equal an independent rasterio read of the files and the labels equal the reader's full
sample (``read``). ``transforms=`` runs on the sample dict in ``__getitem__``, as in torchgeo.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader

from landzoo.datasets import open_dataset
from landzoo.synthetic import generate

# File band orders, written out from formats.md (not taken from landzoo.contract).
SEN12MS_FILE = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
EUROSAT_FILE = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
DATASETS = {
    "bigearthnet-v1": {},
    "bigearthnet-v2": {},
    "sen12ms": {"patch_px": 32},
    "eurosat": {},
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("loader")
    return {
        name: generate(name, out / name, patches=10, seed=3, workers=1, progress=False, **opts)
        for name, opts in DATASETS.items()
    }


def _independent(name: str, root: Path, location: str, patch_id: str, band: str) -> np.ndarray:
    """One band of one patch, read with rasterio from the file the dataset stores it in."""
    if name.startswith("bigearthnet"):
        with rasterio.open(root / location / f"{patch_id}_{band}.tif") as src:
            return src.read(1)
    order = SEN12MS_FILE if name == "sen12ms" else EUROSAT_FILE
    with rasterio.open(root / location) as src:
        return src.read(order.index(band) + 1)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("name", list(DATASETS))
def test_plain_dataloader_default_collate(roots: dict[str, Path], name: str, workers: int) -> None:
    reader = open_dataset(name, roots[name], bands="s2_10m_20m")
    loader = DataLoader(reader, batch_size=4, num_workers=workers)
    seen = 0
    for batch in loader:
        assert set(batch) == {"id", "image", "label"}  # names and meta stay out of the batch
        n = len(batch["id"])
        assert batch["label"].shape == (n, len(reader.classes)) and batch["label"].dtype == torch.uint8
        for k, patch_id in enumerate(batch["id"]):
            index = seen + k
            record = reader.records[index]
            assert patch_id == record.id
            full = reader.read(index)
            np.testing.assert_array_equal(batch["label"][k].numpy(), full["label"])
            assert [c for c, on in zip(reader.classes, batch["label"][k].tolist(), strict=True) if on] == full["labels"]
            for group, names in reader.groups.items():
                tensor = batch["image"][group]
                assert tensor.dtype == torch.uint16 and tensor.shape[:2] == (n, len(names))
                for c, band in enumerate(names):
                    expected = _independent(name, reader.root, record.location, record.id, band)
                    np.testing.assert_array_equal(tensor[k, c].numpy(), expected)
        seen += n
    assert seen == len(reader) == 10


class _ToFloat:
    """A transform as torchgeo users write them: sample dict in, sample dict out (picklable for workers)."""

    def __call__(self, sample: dict) -> dict:
        image = {g: torch.from_numpy(a.astype(np.float32)) / 10_000 for g, a in sample["image"].items()}
        return {**sample, "image": image, "label": torch.from_numpy(sample["label"]).float(), "seen": True}


@pytest.mark.parametrize("workers", [0, 2])
def test_transforms_run_in_getitem(roots: dict[str, Path], workers: int) -> None:
    raw = open_dataset("eurosat", roots["eurosat"], bands="rgb")
    reader = open_dataset("eurosat", roots["eurosat"], bands="rgb", transforms=_ToFloat())
    batch = next(iter(DataLoader(reader, batch_size=4, num_workers=workers)))
    assert batch["seen"].tolist() == [True] * 4 and batch["label"].dtype == torch.float32
    for k in range(4):
        np.testing.assert_allclose(
            batch["image"]["10m"][k].numpy(), raw[k]["image"]["10m"].astype(np.float32) / 10_000, rtol=1e-6
        )
    assert "seen" not in reader.read(0)  # the full sample is never transformed
