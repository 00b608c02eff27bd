"""Fault catalogue, readers: every fault a raw dataset can carry, injected into each reader it applies to.

Faults: truncated, zero-byte, random-byte, wrong-shape and wrong-dtype TIFFs; a missing band file; malformed
and unknown-label JSON (BigEarthNet v1); a listed patch absent on disk, under both ``missing`` settings.
Outcome asserted for each: the Python API raises a PatchError naming the patch and the file (or records
exactly that with ``on_bad="skip"``); ``landzoo inspect`` lists it; ``landzoo encode`` stops with one line
naming it, and ``--skip-bad`` lists it in ``report.json``. Tiny synthetic datasets, one per reader, built once;
each test damages its own copy. The CLI runs in a forked child (``forked_landzoo``): no interpreter start-up.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio

from _faults import cli_error_line, copy_tree, forked_landzoo
from landzoo.datasets import PatchError, open_dataset

#: Reader -> (generate() options, band selection used for every run). SEN12MS reads S1 too, so that a
#: missing band file (its S1 file) is a fault it can have.
DATASETS = {
    "bigearthnet-v1": ({}, "s2_10m_20m"),
    "bigearthnet-v2": ({}, "s2_10m_20m"),
    "sen12ms": ({"patch_px": 16, "s1": True}, "s1_s2_10m_20m"),
    "eurosat": ({}, "s2_10m_20m"),
}
PATCHES = 12
UNREADABLE = r"unreadable GeoTIFF \(.+\)"


@pytest.fixture(scope="module")
def clean(ben_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny synthetic copy per reader (BigEarthNet v1: the catalogue's shared one, conftest.py)."""
    from landzoo.synthetic import generate

    out = tmp_path_factory.mktemp("reader-faults")
    roots = {"bigearthnet-v1": ben_raw}
    for name, (opts, _) in DATASETS.items():
        if name not in roots:
            roots[name] = generate(name, out / name, patches=PATCHES, seed=5, workers=1, progress=False, **opts)
        if name == "eurosat":  # the synthetic copy has no split lists; the absent-patch fault needs one
            ids = open_dataset(name, roots[name]).ids()
            (roots[name] / "eurosat-train.txt").write_text("".join(f"{i}.jpg\n" for i in ids))
    return roots


def _reader(name: str, root: Path, **kw: object):  # type: ignore[no-untyped-def]
    return open_dataset(name, root, bands=DATASETS[name][1], **kw)


# ---- injecting faults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """A fault injected into one patch: the file at fault and the reason landzoo must give (a regex)."""

    patch_id: str
    path: Path
    reason: str


def _band_file(name: str, reader, index: int) -> tuple[Path, int, str]:  # type: ignore[no-untyped-def]
    """The file holding the S2 pixels of patch ``index``, its side in px and the dtypes the reader accepts."""
    record = reader.records[index]
    if name.startswith("bigearthnet"):
        return reader.root / record.location / f"{record.id}_B03.tif", 120, "uint16"
    dtypes = "uint16/int16" if name == "sen12ms" else "uint16"
    with rasterio.open(reader.root / record.location) as src:
        return reader.root / record.location, src.width, dtypes


def _rewrite(path: Path, array: np.ndarray) -> None:
    """Replace a GeoTIFF by ``array`` ([C, H, W]) keeping its georeferencing (a file of the wrong kind)."""
    with rasterio.open(path) as src:
        crs, transform = src.crs, src.transform
    profile = {"driver": "GTiff", "count": array.shape[0], "height": array.shape[1], "width": array.shape[2]}
    with rasterio.open(path, "w", dtype=array.dtype, crs=crs, transform=transform, **profile) as dst:
        dst.write(array)


def truncated(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path, _, _ = _band_file(name, reader, i)
    os.truncate(path, path.stat().st_size // 2)
    return Fault(reader.records[i].id, path, UNREADABLE)


def zero_byte(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path, _, _ = _band_file(name, reader, i)
    path.write_bytes(b"")
    return Fault(reader.records[i].id, path, UNREADABLE)


def random_bytes(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path, _, _ = _band_file(name, reader, i)
    path.write_bytes(np.random.default_rng(i).bytes(path.stat().st_size))
    return Fault(reader.records[i].id, path, UNREADABLE)


def wrong_shape(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path, px, _ = _band_file(name, reader, i)
    with rasterio.open(path) as src:
        count = src.count
    _rewrite(path, np.ones((count, px // 2, px // 2), np.uint16))
    return Fault(reader.records[i].id, path, f"expected {px}x{px} px, file has {px // 2}x{px // 2}")


def wrong_dtype(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path, _, dtypes = _band_file(name, reader, i)
    with rasterio.open(path) as src:
        data = src.read()
    _rewrite(path, data.astype(np.float32))
    return Fault(reader.records[i].id, path, f"expected dtype {dtypes}, file has float32")


def missing_band(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    record = reader.records[i]
    if name == "sen12ms":  # the S1 file of the patch
        from landzoo.datasets.sen12ms import parse_patch_name

        season, scene, patch = parse_patch_name(record.id)
        path = reader.root / season / f"s1_{scene}" / f"{season}_s1_{scene}_p{patch}.tif"
    else:
        path, _, _ = _band_file(name, reader, i)
    path.unlink()
    return Fault(record.id, path, "file is missing")


def _labels_json(reader, i: int) -> Path:  # type: ignore[no-untyped-def]
    record = reader.records[i]
    return reader.root / record.location / f"{record.id}_labels_metadata.json"


def malformed_json(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path = _labels_json(reader, i)
    path.write_bytes(path.read_bytes()[:-7])
    return Fault(reader.records[i].id, path, r"malformed JSON \(.+\)")


def unknown_label(name: str, reader, i: int) -> Fault:  # type: ignore[no-untyped-def]
    path = _labels_json(reader, i)
    data = json.loads(path.read_text())
    data["labels"] = [*data["labels"], "Martian forest"]
    path.write_text(json.dumps(data))
    return Fault(reader.records[i].id, path, re.escape("unknown BigEarthNet-43 label(s) 'Martian forest'"))


TIFF_FAULTS: dict[str, Callable[..., Fault]] = {
    "truncated": truncated,
    "zero-byte": zero_byte,
    "random-byte": random_bytes,
    "wrong-shape": wrong_shape,
    "wrong-dtype": wrong_dtype,
}
FAULTS: dict[str, tuple[Callable[..., Fault], tuple[str, ...]]] = {
    **{k: (f, tuple(DATASETS)) for k, f in TIFF_FAULTS.items()},
    "missing-band-file": (missing_band, ("bigearthnet-v1", "bigearthnet-v2", "sen12ms")),  # EuroSAT: 1 file
    "malformed-json": (malformed_json, ("bigearthnet-v1",)),
    "unknown-label-json": (unknown_label, ("bigearthnet-v1",)),
}
CASES = [(d, f) for f, (_, applies) in FAULTS.items() for d in applies]


def _matches(fault: Fault, patch_id: str, path: str | None, reason: str) -> bool:
    return patch_id == fault.patch_id and path == str(fault.path) and re.fullmatch(fault.reason, reason) is not None


# ---- the Python API: one fault, one PatchError naming patch and file --------------------------------------


@pytest.mark.parametrize(("dataset", "fault"), CASES)
def test_python_api_raises_a_patch_error_naming_patch_and_file(
    clean: dict[str, Path], tmp_path: Path, dataset: str, fault: str
) -> None:
    root = copy_tree(clean[dataset], tmp_path / dataset)
    reader = _reader(dataset, root)
    f = FAULTS[fault][0](dataset, reader, 3)
    with pytest.raises(PatchError) as info:
        reader.read(3)
    err = info.value
    assert _matches(f, err.patch_id, err.path, err.reason), str(err)
    assert str(err) == f"patch {err.patch_id} ({f.path}): {err.reason}"
    with pytest.raises(PatchError):
        reader[3]  # the DataLoader view reads and checks the same
    skip = _reader(dataset, root, on_bad="skip")
    ids = [s["id"] for s in skip.iter_samples()]
    assert ids == [i for i in skip.ids() if i != f.patch_id]  # every other patch is read
    assert len(skip.bad) == 1 and _matches(f, skip.bad[0].patch_id, skip.bad[0].path, skip.bad[0].reason)


# ---- the CLI: every fault of a reader at once ---------------------------------------------------------


@pytest.fixture(scope="module")
def all_faults(clean: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    """Per reader: a copy with every fault that applies to it, each in its own patch."""
    out = {}
    for dataset in DATASETS:
        root = copy_tree(clean[dataset], tmp_path_factory.mktemp("all") / dataset)
        reader = _reader(dataset, root)
        kinds = [k for k, (_, applies) in FAULTS.items() if dataset in applies]
        assert len(reader) > len(kinds)
        out[dataset] = (root, [FAULTS[k][0](dataset, reader, i) for i, k in enumerate(kinds)])
    return out


def _cli(command: str, dataset: str, root: Path, *extra: str):  # type: ignore[no-untyped-def]
    return forked_landzoo(command, "--dataset", dataset, str(root), "--bands", DATASETS[dataset][1], *extra)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_inspect_lists_every_bad_patch_with_file_and_reason(all_faults: dict, dataset: str) -> None:
    root, faults = all_faults[dataset]
    proc = _cli("inspect", dataset, root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"bad patches: {len(faults)}" in proc.stdout
    listed = [ln for ln in proc.stdout.splitlines() if ln.startswith("  ")]
    for f in faults:
        pattern = rf"  {re.escape(f.patch_id)}: {f.reason} \({re.escape(str(f.path))}\)"
        assert any(re.fullmatch(pattern, ln) for ln in listed), (pattern, listed)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_encode_stops_with_one_line_or_lists_them_all_with_skip_bad(
    all_faults: dict, tmp_path: Path, dataset: str
) -> None:
    root, faults = all_faults[dataset]
    store = tmp_path / "store"
    proc = _cli("encode", dataset, root, "--out", str(store), "--workers", "1", "--quiet")
    line = cli_error_line(proc, "encode")
    m = re.fullmatch(r"landzoo encode: error: patch (\S+) \((.+?)\): (.+)", line)
    assert m and any(_matches(f, *m.groups()) for f in faults), line
    assert not (store / "manifest.json").exists()

    proc = _cli("encode", dataset, root, "--out", str(tmp_path / "skipped"), "--workers", "1", "--quiet", "--skip-bad")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"skipped {len(faults)} bad patch(es)" in proc.stdout
    report = json.loads((tmp_path / "skipped" / "report.json").read_text())
    skipped = report["skipped"]
    assert len(skipped) == len(faults) and report["patches_stored"] == report["patches_listed"] - len(faults)
    for f in faults:
        assert sum(_matches(f, s["id"], s["path"], s["reason"]) for s in skipped) == 1, (f, skipped)


# ---- a listed patch absent on disk: the one policy, both settings -----------------------------------------


def _remove_a_listed_patch(dataset: str, root: Path) -> tuple[str, str, Path]:
    """Delete patch 2 from disk (it stays in its split list); return its id, split and expected path."""
    reader = _reader(dataset, root)
    record = reader.records[2]
    path = root / record.location
    if path.is_dir():
        import shutil

        shutil.rmtree(path)
    else:
        path.unlink()
    return record.id, str(record.split), path


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_absent_listed_patch_is_reported_by_default(clean: dict[str, Path], tmp_path: Path, dataset: str) -> None:
    root = copy_tree(clean[dataset], tmp_path / dataset)
    pid, split, _ = _remove_a_listed_patch(dataset, root)
    reader = _reader(dataset, root)
    assert pid not in reader.ids() and reader.missing_from_disk == {split: 1} and reader.bad == []
    assert len(reader) == len(_reader(dataset, clean[dataset])) - 1

    line = f"listed but absent on disk: 1 patch(es) ({split} 1)"
    proc = _cli("inspect", dataset, root)
    assert proc.returncode == 0 and f"{line}, not read; --missing error makes each one a bad patch" in proc.stdout
    store = tmp_path / "store"
    proc = _cli("encode", dataset, root, "--out", str(store), "--workers", "1", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{line}, recorded in {store / 'report.json'}" in proc.stdout
    report = json.loads((store / "report.json").read_text())
    assert report["reader"]["missing_from_disk"] == {split: 1} and report["skipped"] == []


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_absent_listed_patch_is_a_bad_patch_with_missing_error(
    clean: dict[str, Path], tmp_path: Path, dataset: str
) -> None:
    root = copy_tree(clean[dataset], tmp_path / dataset)
    pid, split, path = _remove_a_listed_patch(dataset, root)
    reason = rf"listed in the {split} split \(.+\) but absent on disk"
    with pytest.raises(PatchError) as info:
        _reader(dataset, root, missing="error")
    assert info.value.patch_id == pid and info.value.path == str(path) and re.fullmatch(reason, info.value.reason)
    skip = _reader(dataset, root, missing="error", on_bad="skip")
    assert [b.patch_id for b in skip.bad] == [pid] and skip.missing_from_disk == {}

    proc = _cli("inspect", dataset, root, "--missing", "error")
    assert proc.returncode == 1 and re.search(rf"  {pid}: {reason} \({re.escape(str(path))}\)", proc.stdout)
    proc = _cli(
        "encode", dataset, root, "--out", str(tmp_path / "s"), "--workers", "1", "--quiet", "--missing", "error"
    )
    line = cli_error_line(proc, "encode")
    assert re.fullmatch(rf"landzoo encode: error: patch {pid} \({re.escape(str(path))}\): {reason}", line), line
    store = tmp_path / "skipped"
    proc = _cli(
        "encode", dataset, root, "--out", str(store), "--workers", "1", "--quiet", "--missing", "error", "--skip-bad"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    skipped = json.loads((store / "report.json").read_text())["skipped"]
    assert [(s["id"], s["path"], s["stage"]) for s in skipped] == [(pid, str(path), "index")]
    assert re.fullmatch(reason, skipped[0]["reason"])
