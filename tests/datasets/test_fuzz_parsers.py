"""Property-based fuzzing of what the readers parse: TIFF headers, labels JSON, split lists (issue 10).

Whatever the bytes, a parser either returns the right values or raises landzoo's own error naming the file
(:class:`PatchError` / :class:`DatasetError`), never another exception. "Right" is decided independently:
pixels by rasterio (GDAL) reading the same bytes, JSON fields by ``json.loads`` of the same text.

Bounded for CI: a fixed ``max_examples`` per target, ``derandomize=True`` (the same examples on every run,
no example database), ``deadline=None`` (a loaded CI machine must not turn slowness into failures).
Inputs are valid files with bytes changed, cut or appended where the parsers look (header, IFD, the tag data
it points to), plus plain random bytes. ``LANDZOO_FUZZ_SCALE=N`` searches N times longer with random examples.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasterio.io import MemoryFile

from landzoo import contract
from landzoo.datasets import DatasetError, PatchError
from landzoo.datasets.base import read_band_file
from landzoo.datasets.bigearthnet_v1 import BigEarthNetV1, read_s1_labels_json, read_s2_labels_json
from landzoo.datasets.eurosat import read_eurosat_split_list
from landzoo.datasets.rawtiff import parse_plain_tiff
from landzoo.datasets.sen12ms import read_holdout_scenes, read_split_list
from landzoo.synthetic.tiff import TiffLayout

#: ``LANDZOO_FUZZ_SCALE=20`` runs 20 times the examples with fresh random ones (a deeper local search).
_SCALE = int(os.environ.get("LANDZOO_FUZZ_SCALE", "0"))


def _fuzz(examples: int) -> Callable:
    return settings(
        max_examples=examples * max(_SCALE, 1),
        deadline=None,
        derandomize=not _SCALE,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ---- valid inputs to start from -----------------------------------------------------------------------


def _base_tiffs() -> dict[str, tuple[bytes, dict]]:
    """Small valid GeoTIFFs of each kind the datasets ship, and the ``read_band_file`` checks that fit them."""
    rng = np.random.default_rng(0)
    out = {}
    ben = TiffLayout(20, 20, "uint16", 32, (60.0, -60.0), rows_per_strip=6)
    out["ben_uint16_strips"] = (ben.encode(rng.integers(0, 9999, (20, 20)), 5e5, 5e6), {"shape": (20, 20)})
    ms = TiffLayout(8, 8, "uint16", 32, (10.0, -10.0), samples=13)
    out["eurosat_13_bands"] = (ms.encode(rng.integers(0, 9999, (8, 8, 13)), 5e5, 5e6), {"shape": (8, 8), "count": 13})
    s1 = TiffLayout(12, 12, "float32", 32, (10.0, -10.0), rows_per_strip=5, short_bytecounts=True)
    out["s1_float32"] = (
        s1.encode(rng.normal(-12, 3, (12, 12)).astype(np.float32), 5e5, 5e6),
        {"shape": (12, 12), "dtypes": ("float32",)},
    )
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big.tif"
        tifffile.imwrite(big, rng.integers(0, 9999, (10, 10), dtype=np.uint16), byteorder=">", rowsperstrip=3)
        out["big_endian"] = (big.read_bytes(), {"shape": (10, 10)})
        gdal = Path(tmp) / "gdal.tif"
        profile = {"driver": "GTiff", "width": 9, "height": 9, "count": 1, "dtype": "uint16", "crs": "EPSG:32632"}
        with rasterio.open(gdal, "w", transform=rasterio.Affine(10, 0, 5e5, 0, -10, 5e6), **profile) as dst:
            dst.write(rng.integers(0, 9999, (1, 9, 9), dtype=np.uint16))
        out["gdal_written"] = (gdal.read_bytes(), {"shape": (9, 9)})
    return out


BASE_TIFFS = _base_tiffs()


@pytest.fixture(autouse=True)
def _quiet_gdal() -> None:
    """GDAL logs a warning for most damaged headers; thousands of them would only slow the run down."""
    logger = logging.getLogger("rasterio")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def _interesting(buf: bytes) -> list[tuple[int, int]]:
    """Byte ranges a TIFF parser reads: header, IFD, and the tag data its entries point to."""
    end = "<" if buf[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(end + "I", buf, 4)
    (n,) = struct.unpack_from(end + "H", buf, ifd)
    ranges = [(0, 8), (ifd, ifd + 2 + 12 * n + 4)]
    for k in range(n):
        _, typ, count, value = struct.unpack_from(end + "HHII", buf, ifd + 2 + 12 * k)
        size = count * {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 11: 4, 12: 8, 16: 8}.get(typ, 1)
        if size > 4 and value < len(buf):
            ranges.append((value, min(len(buf), value + size)))
    return ranges


@st.composite
def damaged_tiffs(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(BASE_TIFFS)))
    buf = bytearray(BASE_TIFFS[name][0])
    kind = draw(st.sampled_from(["poke", "poke", "poke", "cut", "append", "random"]))
    if kind == "random":
        return name, draw(st.binary(max_size=600))
    if kind == "cut":
        return name, bytes(buf[: draw(st.integers(0, len(buf)))])
    if kind == "append":
        return name, bytes(buf) + draw(st.binary(min_size=1, max_size=64))
    ranges = _interesting(bytes(buf))
    for _ in range(draw(st.integers(1, 4))):
        lo, hi = draw(st.sampled_from(ranges))
        pos = draw(st.integers(lo, max(lo, hi - 1)))
        value = draw(st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 2, 3, 4, 8, 16, 0x7F, 0x80, 0xFF])))
        buf[pos] = value
    return name, bytes(buf)


def _gdal_read(data: bytes) -> np.ndarray | None:
    """The pixels GDAL reads from ``data``, or None if it cannot read them."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with MemoryFile(data) as mem, mem.open() as src:
                return src.read()
    except Exception:
        return None


# ---- TIFF ---------------------------------------------------------------------------------------------


@_fuzz(400)
@given(damaged_tiffs())
def test_plain_tiff_parser_returns_gdal_pixels_or_none(case: tuple[str, bytes]) -> None:
    """The fast path never raises; what it accepts, GDAL reads to the same pixels."""
    _, data = case
    got = parse_plain_tiff(data)
    if got is None:
        return
    ref = _gdal_read(data)
    assert ref is not None, "the fast path accepted bytes that GDAL cannot read"
    assert got.shape == ref.shape and got.dtype == ref.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, ref)


def _poke_tag(buf: bytes, tag: int, *, type_to: int | None = None, data_to: int | None = None) -> bytes:
    """``buf`` with the IFD entry of ``tag`` given another type, or the first byte of its data replaced."""
    out = bytearray(buf)
    (ifd,) = struct.unpack_from("<I", buf, 4)
    (n,) = struct.unpack_from("<H", buf, ifd)
    for k in range(n):
        entry = ifd + 2 + 12 * k
        t, _, count, value = struct.unpack_from("<HHII", buf, entry)
        if t == tag:
            if type_to is not None:
                struct.pack_into("<H", out, entry + 2, type_to)
            if data_to is not None:
                out[value if count * 2 > 4 else entry + 8] = data_to
            return bytes(out)
    raise AssertionError(f"no tag {tag}")


def _not_utf8_citation(buf: bytes) -> bytes:
    """GTModelType 0 (byte 280) makes GDAL take the GeoAsciiParams (at 330) as the CRS name: not UTF-8 there."""
    out = bytearray(buf)
    out[280], out[330] = 0, 0x80
    return bytes(out)


@pytest.mark.parametrize(
    ("base", "damage"),
    [
        ("eurosat_13_bands", lambda b: _poke_tag(b, 338, type_to=0)),  # ExtraSamples of no TIFF type
        ("eurosat_13_bands", lambda b: _poke_tag(b, 338, data_to=153)),  # an ExtraSamples value libtiff refuses
        ("gdal_written", _not_utf8_citation),  # rasterio cannot decode the CRS text
    ],
    ids=["extrasamples-type", "extrasamples-value", "crs-text-not-utf8"],
)
def test_what_the_fuzzing_found(fuzz_dir: Path, base: str, damage: Callable[[bytes], bytes]) -> None:
    """Files the fast path used to read although GDAL/rasterio refuse them: now rasterio decides, one error."""
    data = damage(BASE_TIFFS[base][0])
    assert _gdal_read(data) is None and parse_plain_tiff(data) is None
    path = fuzz_dir / "found.tif"
    path.write_bytes(data)
    with pytest.raises(PatchError, match=r"unreadable GeoTIFF") as info:
        read_band_file(path, "P1", **BASE_TIFFS[base][1])
    assert info.value.path == str(path)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@_fuzz(150)
@given(case=damaged_tiffs())
def test_read_band_file_gives_right_pixels_or_a_patch_error(fuzz_dir: Path, case: tuple[str, bytes]) -> None:
    name, data = case
    path = fuzz_dir / f"{name}.tif"
    path.write_bytes(data)
    checks = BASE_TIFFS[name][1]
    try:
        arr = read_band_file(path, "P1", **checks)
    except PatchError as err:
        assert err.patch_id == "P1" and err.path == str(path) and str(path) in str(err)
        assert "\n" not in str(err)
        return
    ref = _gdal_read(data)
    assert ref is not None
    np.testing.assert_array_equal(arr, ref)
    assert arr.shape == (checks.get("count", 1), *checks["shape"])
    assert arr.dtype.name in checks.get("dtypes", ("uint16",))


# ---- labels JSON (BigEarthNet v1) ------------------------------------------------------------------

S2_JSON = {
    "labels": ["Pastures", "Coniferous forest"],
    "coordinates": {"ulx": 580920, "uly": 5127300, "lrx": 582120, "lry": 5126100},
    "projection": 'PROJCS["WGS 84 / UTM zone 32N"]',
    "tile_source": "S2A_MSIL1C_20170613T101031_N0205_R022_T32TNS_20170613T101608.SAFE",
    "acquisition_date": "2017-06-13 10:10:31",
}
S1_JSON = {
    "labels": ["Pastures"],
    "coordinates": S2_JSON["coordinates"],
    "projection": S2_JSON["projection"],
    "corresponding_s2_patch": "P1",
    "scene_source": "S1A_IW_GRDH_1SDV_20170613T165043_20170613T165108_017018_01C579_6A83",
    "acquisition_time": "2017-06-13T16:50:43",
}
_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from([*contract.BEN43_TO_BEN19, "2017-06-13 10:10:31", "2017-13-40 25:61:61", "P1"]),
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def damaged_json(draw: st.DrawFn, base: dict) -> bytes:
    kind = draw(st.sampled_from(["field", "field", "drop", "text", "bytes", "deep", "digits"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.integers(500, 200_000))
        return b"[" * depth + b"]" * draw(st.sampled_from([0, depth]))
    if kind == "digits":  # past Python's int-from-text digit limit (a ValueError that is not a JSONDecodeError)
        return json.dumps({**base, "coordinates": None}).replace("null", "9" * 5000).encode()
    data = dict(base)
    if kind == "drop":
        data.pop(draw(st.sampled_from(sorted(data))))
        return json.dumps(data).encode()
    if kind == "field":
        data[draw(st.sampled_from(sorted(data)))] = draw(_JSON_VALUES)
        return json.dumps(data).encode()
    text = bytearray(json.dumps(data).encode())
    for _ in range(draw(st.integers(1, 3))):
        text[draw(st.integers(0, len(text) - 1))] = draw(st.integers(0, 255))
    return bytes(text)


@_fuzz(300)
@given(raw=damaged_json(S2_JSON))
def test_s2_labels_json_right_values_or_a_patch_error(fuzz_dir: Path, raw: bytes) -> None:
    path = fuzz_dir / "P1_labels_metadata.json"
    path.write_bytes(raw)
    try:
        parsed = read_s2_labels_json(path, "P1")
    except PatchError as err:
        assert err.patch_id == "P1" and err.path == str(path) and "\n" not in str(err)
        return
    data = json.loads(raw.decode("utf-8"))  # what the file says, read independently
    assert parsed.labels == tuple(data["labels"]) and set(parsed.labels) <= set(contract.BEN43_TO_BEN19)
    assert parsed.date == data["acquisition_date"].replace(" ", "T") and parsed.tile_source == data["tile_source"]


@_fuzz(150)
@given(raw=damaged_json(S1_JSON))
def test_s1_labels_json_right_values_or_a_patch_error(fuzz_dir: Path, raw: bytes) -> None:
    path = fuzz_dir / "S1_labels_metadata.json"
    path.write_bytes(raw)
    try:
        s2, when = read_s1_labels_json(path, "P1")
    except PatchError as err:
        assert err.patch_id == "P1" and err.path == str(path) and "\n" not in str(err)
        return
    data = json.loads(raw.decode("utf-8"))
    assert s2 == data["corresponding_s2_patch"] == "P1" and when == (data["acquisition_time"] or None)


# ---- split lists -----------------------------------------------------------------------------------

LIST_PARSERS: dict[str, Callable[[Path], list]] = {
    "bigearthnet-v1 split csv": BigEarthNetV1._parse_split_file,
    "eurosat split list": read_eurosat_split_list,
    "sen12ms split list": read_split_list,
    "sen12ms hold-out scenes": read_holdout_scenes,
}
_LIST_LINES = st.sampled_from(
    [
        "S2A_MSIL2A_20170613T101031_87_48",
        "S2A_MSIL2A_20170613T101031_87_48,S1A_IW_GRDH_1SDV_20170613T165043_33UUP_70_48",
        "AnnualCrop_1.jpg",
        "ROIs1158_spring_s2_1_p30.tif",
        "ROIs1158_spring/s1_63",
        "",
        " ",
        "a,b,c",
    ]
)


@_fuzz(200)
@given(
    parser=st.sampled_from(sorted(LIST_PARSERS)),
    raw=st.one_of(
        st.binary(max_size=200),
        st.lists(st.one_of(_LIST_LINES, st.text(max_size=30)), max_size=6).map(lambda ls: "\r\n".join(ls).encode()),
    ),
)
def test_text_lists_parse_or_raise_a_dataset_error(fuzz_dir: Path, parser: str, raw: bytes) -> None:
    path = fuzz_dir / "list.txt"
    path.write_bytes(raw)
    try:
        out = LIST_PARSERS[parser](path)
    except DatasetError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert isinstance(out, list) and all(isinstance(x, str | tuple) for x in out)
