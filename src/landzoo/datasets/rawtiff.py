"""A fast path for the plain GeoTIFFs the datasets ship: uncompressed, stripped, one IFD.

Why: encoding is bounded by reading. Opening a file through GDAL/rasterio costs about a millisecond, and a
BigEarthNet patch is 12 band files, so the reader path tops out near 80 patches/s per process here. These
files are the simplest TIFFs there are (formats.md 1.2: classic TIFF, one IFD, no compression, strips), so
the pixels are one slice of the file at an offset the IFD states; parsing that in Python is ~25x faster.

:func:`read_plain_tiff` returns ``None`` for anything it does not handle *completely* (compression, tiles,
several IFDs, BigTIFF, a file shorter than its strips say, odd sample formats); the caller then falls back to
rasterio, which also produces the proper error message for a damaged file. It never guesses.
"""

from __future__ import annotations

import os
import struct
from typing import NamedTuple

import numpy as np

__all__ = ["ENABLED", "read_plain_tiff"]

#: Set to False to send every read through rasterio (bench-io measures the plain rasterio path this way).
ENABLED = True

_SHORT, _LONG = 3, 4
_TYPE = {_SHORT: ("H", 2), _LONG: ("I", 4)}
#: (SampleFormat, BitsPerSample) -> numpy kind + size
_DTYPES = {
    (1, 8): "u1",
    (1, 16): "u2",
    (1, 32): "u4",
    (2, 8): "i1",
    (2, 16): "i2",
    (2, 32): "i4",
    (3, 32): "f4",
    (3, 64): "f8",
}


def read_plain_tiff(path: str | os.PathLike) -> np.ndarray | None:
    """``[bands, H, W]`` pixels of an uncompressed, stripped, single-IFD TIFF, or ``None`` if it is not one."""
    try:
        with open(path, "rb") as fh:
            buf = fh.read()
    except OSError:
        return None
    return parse_plain_tiff(buf)


class _Layout(NamedTuple):
    """Where and how the pixels lie: what the IFD says, independent of the file's length."""

    dtype: np.dtype
    shape: tuple[int, int, int]  # H, W, samples
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    contiguous: bool


#: IFD bytes -> (out-of-line tag data the layout was read from, layout or None). Every band file of a dataset
#: written by one tool has the same IFD, so parsing it once per band is enough; a hit is re-validated against
#: the out-of-line bytes, so two files with equal IFDs but different strip tables never share a layout.
_CACHE: dict[tuple[str, int, bytes], tuple[tuple[tuple[int, bytes], ...], _Layout | None]] = {}
_CACHE_MAX = 256


def parse_plain_tiff(buf: bytes) -> np.ndarray | None:
    """:func:`read_plain_tiff` on the bytes of a file."""
    if len(buf) < 8:
        return None
    head = buf[:4]
    if head == b"II*\x00":
        end = "<"
    elif head == b"MM\x00*":
        end = ">"
    else:
        return None  # not TIFF, or BigTIFF
    try:
        (ifd,) = struct.unpack_from(end + "I", buf, 4)
        (count,) = struct.unpack_from(end + "H", buf, ifd)
    except struct.error:
        return None
    ifd_bytes = buf[ifd : ifd + 2 + 12 * count + 4]
    if len(ifd_bytes) != 2 + 12 * count + 4:
        return None
    key = (end, ifd, ifd_bytes)
    hit = _CACHE.get(key)
    if hit is not None and all(buf[pos : pos + len(data)] == data for pos, data in hit[0]):
        layout = hit[1]
    else:
        checks: list[tuple[int, bytes]] = []
        layout = _parse_layout(buf, end, ifd, count, checks)
        if len(_CACHE) < _CACHE_MAX:
            _CACHE[key] = (tuple(checks), layout)
    return None if layout is None else _pixels(buf, layout)


def _pixels(buf: bytes, layout: _Layout) -> np.ndarray | None:
    offsets, counts, dtype = layout.offsets, layout.counts, layout.dtype
    if max(o + n for o, n in zip(offsets, counts, strict=True)) > len(buf):
        return None  # truncated: let rasterio say what is wrong
    h, w, c = layout.shape
    if layout.contiguous:
        arr = np.frombuffer(buf, dtype=dtype, count=w * h * c, offset=offsets[0])
    else:
        arr = np.frombuffer(b"".join(buf[o : o + n] for o, n in zip(offsets, counts, strict=True)), dtype=dtype)
    arr = arr.reshape(h, w, c).transpose(2, 0, 1)
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C")  # writable, native byte order


def _parse_layout(buf: bytes, end: str, ifd: int, count: int, checks: list[tuple[int, bytes]]) -> _Layout | None:
    """Read the IFD; ``checks`` receives every out-of-line tag value read, as (position, bytes)."""
    try:
        entries = np.frombuffer(buf, dtype=_ENTRY[end], count=count, offset=ifd + 2)
        (next_ifd,) = struct.unpack_from(end + "I", buf, ifd + 2 + 12 * count)
    except (struct.error, ValueError):
        return None
    if next_ifd != 0:
        return None  # several images (overviews, pages): not ours to interpret
    rows = entries.tolist()  # [(tag, type, count, value)], one conversion instead of per-field numpy indexing
    previous = -1
    for tag, typ, _, _ in rows:  # only the tags these files carry, each of its TIFF type, in order, once
        if tag <= previous or typ not in _TAG_TYPES.get(tag, ()):
            return None  # GDAL may refuse, or read differently: let it decide (the fuzz tests hold us to it)
        previous = tag
    for k, (_, typ, n, value) in enumerate(rows):  # text tags rasterio decodes (CRS, metadata): UTF-8 or GDAL's
        if typ == 2:
            pos = value if n > 4 else ifd + 2 + 12 * k + 8
            text = buf[pos : pos + n]
            if n > 4:
                checks.append((pos, text))
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                return None
            if len(text) != n:
                return None
    tags = {row[0]: k for k, row in enumerate(rows)}
    if 322 in tags:
        return None  # tiled
    short_shift = 0 if end == "<" else 16  # a SHORT stored inline sits in the field's first two bytes

    def get(tag: int, default: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        k = tags.get(tag)
        if k is None:
            return default
        _, typ, n, value = rows[k]
        if typ not in _TYPE:
            return None
        if n == 1:  # the value itself is in the entry
            return ((value >> short_shift) & 0xFFFF,) if typ == _SHORT else (value,)
        char, size = _TYPE[typ]
        pos = ifd + 2 + 12 * k + 8
        if n * size > 4:
            pos = value
            checks.append((pos, buf[pos : pos + n * size]))
        try:
            return struct.unpack_from(f"{end}{n}{char}", buf, pos)
        except struct.error:
            return None

    width, height = get(256), get(257)
    bits, spp = get(258, (1,)), get(277, (1,))
    compression, planar, fmt = get(259, (1,)), get(284, (1,)), get(339, (1,))
    offsets, counts = get(273), get(279)
    if not (width and height and bits and spp and compression and planar and fmt and offsets and counts):
        return None  # missing essentials
    w, h, c = width[0], height[0], spp[0]
    if not (w and h and c) or compression[0] != 1 or len(offsets) != len(counts):
        return None
    if len(set(bits)) != 1 or len(set(fmt)) != 1 or len(bits) not in (1, c) or len(fmt) not in (1, c):
        return None
    kind = _DTYPES.get((fmt[0], bits[0]))
    if kind is None or (planar[0] == 2 and c > 1) or planar[0] not in (1, 2):
        return None  # planar-separate multi-band files are left to rasterio
    photometric, extra = get(262, (1,)), get(338, ())
    if photometric is None or extra is None or len(photometric) != 1 or photometric[0] not in (0, 1, 2):
        return None  # colour models that need more tags (palette, YCbCr, ...) are GDAL's to interpret
    if (photometric[0] == 2 and c < 3) or len(extra) > c or any(x > 2 for x in extra):
        return None  # libtiff refuses these
    dtype = np.dtype(end + kind)
    rows_per_strip = get(278, (h,))
    if not rows_per_strip or len(rows_per_strip) != 1 or rows_per_strip[0] == 0:
        return None
    rps = min(rows_per_strip[0], h)
    row_bytes = w * c * dtype.itemsize
    expected = [min(rps, h - r) * row_bytes for r in range(0, h, rps)]
    if list(counts) != expected:
        return None  # a strip table that libtiff would correct or refuse: let it
    contiguous = all(offsets[k] + counts[k] == offsets[k + 1] for k in range(len(offsets) - 1))
    return _Layout(dtype, (h, w, c), tuple(offsets), tuple(counts), contiguous)


#: The tags the datasets' plain files (and tifffile/GDAL writing the same layout) carry, with their TIFF types
#: (2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL, 12 DOUBLE). A file with any other tag or type goes to rasterio,
#: so that the fast path never reads a file that GDAL would read differently or refuse.
_TAG_TYPES: dict[int, tuple[int, ...]] = {
    256: (3, 4),  # ImageWidth
    257: (3, 4),  # ImageLength
    258: (3,),  # BitsPerSample
    259: (3,),  # Compression
    262: (3,),  # PhotometricInterpretation
    270: (2,),  # ImageDescription
    273: (3, 4),  # StripOffsets
    277: (3,),  # SamplesPerPixel
    278: (3, 4),  # RowsPerStrip
    279: (3, 4),  # StripByteCounts
    282: (5,),  # XResolution
    283: (5,),  # YResolution
    284: (3,),  # PlanarConfiguration
    296: (3,),  # ResolutionUnit
    305: (2,),  # Software
    306: (2,),  # DateTime
    338: (3,),  # ExtraSamples
    339: (3,),  # SampleFormat
    33550: (12,),  # ModelPixelScale
    33922: (12,),  # ModelTiepoint
    34264: (12,),  # ModelTransformation
    34735: (3,),  # GeoKeyDirectory
    34736: (12,),  # GeoDoubleParams
    34737: (2,),  # GeoAsciiParams
    42112: (2,),  # GDAL_METADATA
    42113: (2,),  # GDAL_NODATA
}

_ENTRY = {e: np.dtype([("tag", e + "u2"), ("type", e + "u2"), ("count", e + "u4"), ("value", e + "u4")]) for e in "<>"}
