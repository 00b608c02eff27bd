"""Encode straight from a downloaded archive: same store as from the unpacked folder; unsafe members refused."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from landzoo.cli import main
from landzoo.store.archive import dataset_root, unpack_archive
from landzoo.store.format import StoreError
from landzoo.synthetic import generate


@pytest.fixture(scope="module")
def raw_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    return generate("bigearthnet-v1", out, patches=30, seed=5, workers=1, progress=False, overwrite=True)


def _index(store: Path) -> pd.DataFrame:
    cols = ["id", "split", "shard", "offset", "checksum", "labels"]
    return pd.read_parquet(store / "index.parquet", columns=cols).sort_values("id").reset_index(drop=True)


def test_encode_from_tar_gz_equals_encode_from_the_folder(raw_v1: Path, tmp_path: Path) -> None:
    archive = tmp_path / "BigEarthNet-v1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_v1, arcname=raw_v1.name)  # one top-level folder, as the real download
    base = ["encode", "--dataset", "bigearthnet-v1", "--quiet", "--workers", "1"]
    assert main([*base, str(raw_v1), "--out", str(tmp_path / "from-folder")]) == 0
    assert main([*base, str(archive), "--out", str(tmp_path / "from-archive")]) == 0
    pd.testing.assert_frame_equal(_index(tmp_path / "from-folder"), _index(tmp_path / "from-archive"))
    assert not (tmp_path / "from-archive.unpacked").exists()  # scratch copy removed after a successful encode
    assert main([*base, str(archive), "--out", str(tmp_path / "kept"), "--keep-unpacked"]) == 0
    assert (tmp_path / "kept.unpacked" / raw_v1.name).is_dir()


def test_interrupted_unpack_resumes_and_zip_works(raw_v1: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(raw_v1.rglob("*")):
            zf.write(f, f.relative_to(raw_v1.parent))
    dest = tmp_path / "dest"
    first = sorted(raw_v1.rglob("*.tif"))[0]
    partial = dest / first.relative_to(raw_v1.parent)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(first.read_bytes()[:100])  # what a kill in the middle of a file leaves
    assert dataset_root(unpack_archive(archive, dest, progress=False)) == dest / raw_v1.name
    assert partial.read_bytes() == first.read_bytes()
    n_files = sum(1 for p in raw_v1.rglob("*") if p.is_file())
    assert sum(1 for p in (dest / raw_v1.name).rglob("*") if p.is_file()) == n_files


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("../evil.txt", {"size": 4}),
        ("a/../../evil.txt", {"size": 4}),
        ("/abs/evil.txt", {"size": 4}),
        ("link", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
        ("d/link", {"type": tarfile.SYMTYPE, "linkname": "../../evil.txt"}),
        ("hard", {"type": tarfile.LNKTYPE, "linkname": "../evil.txt"}),
    ],
)
def test_members_outside_the_folder_are_refused(tmp_path: Path, name: str, kw: dict) -> None:
    """Refused before anything is written or skipped, even when the outside target exists with the same size."""
    outside = tmp_path / "evil.txt"
    outside.write_bytes(b"good")  # same size as the member: an earlier version skipped (accepted) it
    archive = tmp_path / "x.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo(name)
        for k, v in kw.items():
            setattr(info, k, v)
        tar.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    with pytest.raises(
        StoreError, match=rf"refusing member {name!r} \(its (name|link target) (is absolute|points outside)"
    ):
        unpack_archive(archive, tmp_path / "dest", progress=False)
    assert outside.read_bytes() == b"good" and not (tmp_path / "dest" / "abs").exists()
    assert not Path("/abs/evil.txt").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt"])
def test_zip_members_outside_the_folder_are_refused(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"evil")
    with pytest.raises(StoreError, match="refusing member"):
        unpack_archive(archive, tmp_path / "dest", progress=False)
    assert not (tmp_path / "evil.txt").exists()


def test_tar_bz2_as_bigearthnet_common_ships_it(raw_v1: Path, tmp_path: Path) -> None:
    archive = tmp_path / "BigEarthNet-v1.0.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(raw_v1, arcname=raw_v1.name)
    dest = unpack_archive(archive, tmp_path / "dest", progress=False)
    assert dataset_root(dest) == dest / raw_v1.name
    n_files = sum(1 for p in raw_v1.rglob("*") if p.is_file())
    assert sum(1 for p in (dest / raw_v1.name).rglob("*") if p.is_file()) == n_files


def test_truncated_archive_and_zstd_are_one_line_errors(raw_v1: Path, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(raw_v1, arcname=raw_v1.name)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert main(["encode", "--dataset", "bigearthnet-v1", str(archive), "--out", str(tmp_path / "s"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cut.tar.gz" in err and "truncated" in err
    zst = tmp_path / "BigEarthNet-S2.tar.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd")
    assert main(["encode", "--dataset", "bigearthnet-v2", str(zst), "--out", str(tmp_path / "z"), "--quiet"]) == 2
    assert "tar --zstd -xf" in capsys.readouterr().err
