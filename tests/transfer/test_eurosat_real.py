"""Real EuroSAT MS files (rico-hdl): reader -> band-aware adaptation -> first layer, bands by name, B8A last in the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from transfer_synth import ARCH, ARCH_KWARGS

from landzoo import contract
from landzoo.datasets import DatasetError, open_dataset
from landzoo.models import create_model
from landzoo.transfer.adapt import transfer_weights
from landzoo.transforms import InputTransform

# EuroSAT MS file order, written out from formats.md section 4: B10 included, B8A LAST (13th).
FILE_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A")
PAPER10 = contract.BAND_SELECTIONS["s2_10m_20m"]


@pytest.fixture
def eurosat_root(shared: Path) -> Path:
    """The folder holding rico-hdl's ``EuroSAT_MS`` (the ``shared`` fixture skips when ../shared is absent)."""
    folder = shared / "rico-hdl" / "EuroSAT_MS"
    if not folder.is_dir():
        pytest.skip(f"real-sample fixture {folder} is absent")
    return folder.parent


def test_real_eurosat_through_the_adapted_first_layer(eurosat_root: Path) -> None:
    root = eurosat_root
    reader = open_dataset("eurosat", root, bands=FILE_ORDER)  # every band, in file order
    samples = list(reader.iter_samples())
    assert len(samples) == 3
    cubes = []
    for s, rec in zip(samples, reader.records, strict=True):
        cube = np.moveaxis(tifffile.imread(root / rec.location), -1, 0)  # independent read, (13, 64, 64)
        np.testing.assert_array_equal(s["image"]["10m"], cube)
        cubes.append(cube)
    assert samples[0]["bands"][-1] == "B8A"

    # a checkpoint on the paper's 10 bands -> a model on EuroSAT's 13, matched by name
    torch.manual_seed(0)
    source = create_model(ARCH, bands=PAPER10, classes="ben19", **ARCH_KWARGS)
    raw = torch.from_numpy(np.stack(cubes).astype(np.float32))
    stats = {b: (float(raw[:, i].mean()), float(raw[:, i].std())) for i, b in enumerate(FILE_ORDER)}  # B10 too
    target = create_model(ARCH, bands=FILE_ORDER, classes="eurosat10", native=False, stats=stats, **ARCH_KWARGS)
    rep, _ = transfer_weights(target, source.state_dict(), PAPER10, FILE_ORDER, 10)
    assert set(rep.kept) == set(PAPER10) and rep.dropped == ()
    assert {b: rep.rule_of(b).source for b in rep.added} == {"B01": "B02", "B09": "B8A", "B10": "B11"}
    w_src = source.state_dict()[f"{rep.layer}.weight"]
    w_tgt = target.state_dict()[f"{rep.layer}.weight"]
    assert torch.equal(w_tgt[:, FILE_ORDER.index("B8A")], w_src[:, PAPER10.index("B8A")])  # 13th <- 8th channel

    # on the real pixels (normalised with their own statistics), the adapted 13-band layer computes exactly what
    # the pretrained 10-band layer computes on the same patches read by band NAME (new bands start at zero)
    x13 = InputTransform(FILE_ORDER, 32, stats=stats, native=False)({"10m": raw})
    paper = open_dataset("eurosat", root, bands="s2_10m_20m")
    raw10 = torch.from_numpy(np.stack([s["image"]["10m"] for s in paper]).astype(np.float32))
    x10 = InputTransform(PAPER10, 32, stats=stats, native=False)({"10m": raw10})
    assert torch.equal(x10, x13[:, [FILE_ORDER.index(b) for b in PAPER10]])
    stem_t = dict(target.named_modules())[rep.layer]
    stem_s = dict(source.named_modules())[rep.layer]
    with torch.no_grad():
        torch.testing.assert_close(stem_t(x13), stem_s(x10), rtol=1e-5, atol=1e-5)
        logits = target(x13)
    assert logits.shape == (3, 10) and torch.isfinite(logits).all()


def test_reader_band_names_survive_any_selection_order(eurosat_root: Path) -> None:
    root = eurosat_root
    sel = ("B8A", "B02", "B10")
    s = open_dataset("eurosat", root, bands=sel)[0]
    cube = np.moveaxis(tifffile.imread(root / "EuroSAT_MS" / "AnnualCrop" / "AnnualCrop_1.tif"), -1, 0)
    np.testing.assert_array_equal(s["image"]["10m"], cube[[12, 1, 9]])
    assert float(cube[9].mean()) < 50  # B10 (cirrus) is about 10 DN in real EuroSAT: the name matched the band
    with pytest.raises(DatasetError, match="no band"):
        open_dataset("eurosat", root, bands=("VV",))
