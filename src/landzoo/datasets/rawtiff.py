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
        entries = np.frombuffer(buf, dtype=_ENTRY[end], count=count, offset=ifd + 2)
        (next_ifd,) = struct.unpack_from(end + "I", buf, ifd + 2 + 12 * count)
    except (struct.error, ValueError):
        return None
    if next_ifd != 0:
        return None  # several images (overviews, pages): not ours to interpret
    tags = {int(t): k for k, t in enumerate(entries["tag"].tolist())}
    if 322 in tags:
        return None  # tiled

    def get(tag: int, default: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
        k = tags.get(tag)
        if k is None:
            return default
        typ, n = int(entries["type"][k]), int(entries["count"][k])
        if typ not in _TYPE:
            return None
        char, size = _TYPE[typ]
        pos = ifd + 2 + 12 * k + 8
        if n * size > 4:
            (pos,) = struct.unpack_from(end + "I", buf, pos)
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
    if compression[0] != 1 or len(set(bits)) != 1 or len(set(fmt)) != 1 or len(offsets) != len(counts):
        return None
    kind = _DTYPES.get((fmt[0], bits[0]))
    if kind is None or (planar[0] == 2 and c > 1):
        return None  # planar-separate multi-band files are left to rasterio
    dtype = np.dtype(end + kind)
    nbytes = w * h * c * dtype.itemsize
    if sum(counts) != nbytes or max(o + n for o, n in zip(offsets, counts, strict=True)) > len(buf):
        return None  # truncated or inconsistent: let rasterio say what is wrong
    contiguous = all(offsets[k] + counts[k] == offsets[k + 1] for k in range(len(offsets) - 1))
    if contiguous:
        arr = np.frombuffer(buf, dtype=dtype, count=w * h * c, offset=offsets[0])
    else:
        arr = np.frombuffer(b"".join(buf[o : o + n] for o, n in zip(offsets, counts, strict=True)), dtype=dtype)
    arr = arr.reshape(h, w, c).transpose(2, 0, 1)
    return np.array(arr, dtype=dtype.newbyteorder("="), order="C")  # writable, native byte order


_ENTRY = {e: np.dtype([("tag", e + "u2"), ("type", e + "u2"), ("count", e + "u4"), ("value", e + "u4")]) for e in "<>"}
