"""The plain-TIFF fast path: equal to tifffile on every real fixture it accepts, None for what it must not touch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from _fixtures import SHARED_FIXTURES, shared_fixture
from landzoo.datasets.rawtiff import read_plain_tiff


def _as_chw(a: np.ndarray, bands: int) -> np.ndarray:
    return a[None] if a.ndim == 2 else (a.transpose(2, 0, 1) if a.shape[-1] == bands else a)


def test_equals_tifffile_on_every_real_fixture_tif() -> None:
    shared_fixture()
    files = sorted(SHARED_FIXTURES.rglob("*.tif"))
    accepted = 0
    for f in files:
        got = read_plain_tiff(f)
        if got is None:
            continue
        accepted += 1
        ref = _as_chw(tifffile.imread(f), got.shape[0])
        assert got.shape == ref.shape and got.dtype == ref.dtype, f
        np.testing.assert_array_equal(got, ref, err_msg=str(f))
        assert got.flags.writeable and got.flags.c_contiguous
    ben = [f for f in files if "BigEarthNet-S2-Example" in str(f)]
    assert ben and all(read_plain_tiff(f) is not None for f in ben)  # every real BigEarthNet band file
    assert accepted >= len(ben)


@pytest.mark.parametrize("dtype", ["uint16", "float32", "int16", "uint8"])
def test_plain_files_of_several_layouts(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(0)
    data = (rng.random((3, 37, 41)) * 200).astype(dtype)
    path = tmp_path / "multi.tif"
    tifffile.imwrite(path, data.transpose(1, 2, 0), photometric="minisblack", planarconfig="contig", rowsperstrip=5)
    np.testing.assert_array_equal(read_plain_tiff(path), data)
    tifffile.imwrite(tmp_path / "big.tif", data[0], byteorder=">", rowsperstrip=7)
    np.testing.assert_array_equal(read_plain_tiff(tmp_path / "big.tif"), data[:1])


def test_refuses_what_it_does_not_fully_handle(tmp_path: Path) -> None:
    data = np.arange(60 * 60, dtype=np.uint16).reshape(60, 60)
    tifffile.imwrite(tmp_path / "zip.tif", data, compression="zlib")
    tifffile.imwrite(tmp_path / "tiled.tif", data, tile=(16, 16))
    with tifffile.TiffWriter(tmp_path / "pages.tif") as tw:  # two IFDs
        tw.write(data)
        tw.write(data)
    tifffile.imwrite(tmp_path / "bigtiff.tif", data, bigtiff=True)
    tifffile.imwrite(tmp_path / "ok.tif", data)
    full = (tmp_path / "ok.tif").read_bytes()
    (tmp_path / "truncated.tif").write_bytes(full[:-10])
    (tmp_path / "garbage.tif").write_bytes(b"not a tiff at all")
    for name in ("zip", "tiled", "pages", "bigtiff", "truncated", "garbage", "missing"):
        assert read_plain_tiff(tmp_path / f"{name}.tif") is None, name
    np.testing.assert_array_equal(read_plain_tiff(tmp_path / "ok.tif")[0], data)


def test_read_band_file_is_the_same_with_and_without_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from landzoo.datasets import rawtiff
    from landzoo.datasets.base import read_band_file

    files = sorted(shared_fixture("bigearthnet_common").rglob("*_B8A.tif"))[:3]
    assert files
    for f in files:
        fast = read_band_file(f, f.parent.name, shape=(60, 60))
        monkeypatch.setattr(rawtiff, "ENABLED", False)
        slow = read_band_file(f, f.parent.name, shape=(60, 60))
        monkeypatch.setattr(rawtiff, "ENABLED", True)
        assert fast.dtype == slow.dtype == np.uint16
        np.testing.assert_array_equal(fast, slow)


def test_read_band_file_checks_what_the_fast_path_returns(tmp_path: Path) -> None:
    from landzoo.datasets.base import PatchError, read_band_file

    src = sorted(shared_fixture("bigearthnet_common").rglob("*_B02.tif"))[0]
    assert read_plain_tiff(src) is not None  # the fast path takes this file
    with pytest.raises(PatchError, match="expected 60x60 px, file has 120x120"):
        read_band_file(src, "p", shape=(60, 60))
    with pytest.raises(PatchError, match="expected dtype float32"):
        read_band_file(src, "p", dtypes=("float32",))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(src.read_bytes()[:-100])
    assert read_plain_tiff(cut) is None
    with pytest.raises(PatchError, match="unreadable GeoTIFF"):
        read_band_file(cut, "p")


def test_layout_cache_never_serves_another_files_strip_table(tmp_path: Path) -> None:
    """Two files with byte-identical IFDs but different out-of-line strip offsets are each read correctly."""
    import struct

    from landzoo.datasets import rawtiff

    data = np.arange(8 * 6, dtype="uint16").reshape(8, 6)
    a = tmp_path / "a.tif"
    tifffile.imwrite(a, data, rowsperstrip=4)  # two strips: StripOffsets is stored outside the IFD
    rawtiff._CACHE.clear()
    np.testing.assert_array_equal(read_plain_tiff(a)[0], data)
    buf = bytearray(a.read_bytes())
    tif = tifffile.TiffFile(a)
    offsets_tag = tif.pages[0].tags["StripOffsets"]
    first, second = tif.pages[0].dataoffsets
    tif.close()
    assert offsets_tag.count == 2 and offsets_tag.valueoffset > 0
    struct.pack_into("<2I", buf, offsets_tag.valueoffset, second, first)  # same IFD bytes, strips swapped
    b = tmp_path / "b.tif"
    b.write_bytes(bytes(buf))
    got = read_plain_tiff(b)
    np.testing.assert_array_equal(got[0], tifffile.imread(b))
    np.testing.assert_array_equal(got[0], np.concatenate([data[4:], data[:4]]))
    np.testing.assert_array_equal(read_plain_tiff(a)[0], data)  # and the first file is still read right
