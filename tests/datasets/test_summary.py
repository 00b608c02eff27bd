"""``summarise``: bad patches found while listing the folder and while reading pixels, each counted once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from _fixtures import shared_fixture
from landzoo.datasets.bigearthnet_v1 import BigEarthNetV1
from landzoo.datasets.summary import format_summary, summarise
from landzoo.store.encode import encode_reader

EXAMPLE = ("bigearthnet_common", "BigEarthNet-S2-Example")


def _broken_copy(tmp_path: Path) -> tuple[Path, str]:
    """The example patches, one missing its B11 file (a pixel-reading fault) and a foreign folder (an index fault)."""
    root = tmp_path / "BigEarthNet-v1.0"
    shutil.copytree(shared_fixture(*EXAMPLE), root)
    victim = sorted(p.name for p in root.iterdir())[0]
    (root / victim / f"{victim}_B11.tif").unlink()
    (root / "notes").mkdir()
    return root, victim


def test_limit_keeps_the_index_time_bad_patches(tmp_path: Path) -> None:
    root, victim = _broken_copy(tmp_path)
    reader = BigEarthNetV1(root, on_bad="skip")
    first = reader.ids()[0]
    assert first == victim
    summary = summarise(reader, progress=False, limit=1)
    assert summary["patches"] == 0
    assert sorted(b["id"] for b in summary["bad_patches"]) == sorted(["notes", victim])
    # Past the limit nothing is read, but the foreign folder is still reported.
    reader = BigEarthNetV1(root, on_bad="skip")
    summary = summarise(reader, progress=False, limit=0)
    assert [b["id"] for b in summary["bad_patches"]] == ["notes"]
    assert "bad patches: 1" in format_summary(summary)


def test_a_reader_read_before_counts_each_bad_patch_once(tmp_path: Path) -> None:
    root, victim = _broken_copy(tmp_path)
    reader = BigEarthNetV1(root, on_bad="skip")
    list(reader.iter_samples())  # records the missing B11 once already
    assert [b.patch_id for b in reader.bad] == ["notes", victim]
    summary = summarise(reader, progress=False)
    assert [b["id"] for b in summary["bad_patches"]] == ["notes", victim]
    # With a limit that leaves the victim out, its earlier pixel-reading entry is not reported either.
    reader = BigEarthNetV1(root, on_bad="skip")
    list(reader.iter_samples())
    summary = summarise(reader, progress=False, limit=0)
    assert [b["id"] for b in summary["bad_patches"]] == ["notes"]


def test_patches_in_no_split_are_counted_and_printed(tmp_path: Path) -> None:
    root = tmp_path / "BigEarthNet-v1.0"
    shutil.copytree(shared_fixture(*EXAMPLE), root)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.csv").write_text("S2A_MSIL2A_20170613T101031_87_48\n")
    summary = summarise(BigEarthNetV1(tmp_path, bands="rgb"), progress=False)
    assert summary["unlisted"] == 4  # six folders, one snowy (dropped), one listed
    assert summary["patches_per_split"] == {"none": 4, "train": 1}
    assert "in no split (on disk, named by no split list): 4" in format_summary(summary)
    # The store's report names them too, so an encode does not hide them either.
    encode_reader(BigEarthNetV1(tmp_path, bands="rgb"), tmp_path / "store", progress=False)
    report = json.loads((tmp_path / "store" / "report.json").read_text())
    assert len(report["reader"]["unlisted"]) == 4 and report["patches_stored"] == 5
    plain = summarise(BigEarthNetV1(shared_fixture(*EXAMPLE), bands="rgb"), progress=False)
    assert plain["unlisted"] == 0 and "in no split" not in format_summary(plain)
