"""A byte-exact GeoTIFF writer for the few layouts the real datasets use (no GDAL in the hot loop).

Why not rasterio per file: opening a GDAL dataset costs about a millisecond, and BigEarthNet-v1 is 13
files per patch. The real files are simple (classic little-endian TIFF, one IFD, strips, WGS 84 / UTM
GeoTIFF keys), so :class:`TiffLayout` builds the header bytes once per (size, dtype, zone, pixel size) and
only patches the tie point per file; pixel strips are appended as raw bytes.

The layout reproduces what GDAL/libtiff wrote for the real files, byte for byte (tests compare headers
against the real samples in ``shared/fixtures``):

* the IFD right after the 8-byte header, entries in tag order, then the out-of-line values in libtiff's
  write order (BitsPerSample, StripByteCounts, StripOffsets, ExtraSamples, SampleFormat, GDAL_METADATA,
  GDAL_NODATA, then the GeoTIFF tags), each at an even offset, then the pixel data;
* GDAL's default strip height: as many rows as fit in 8 KiB (34 rows at 120 px uint16, 4 for EuroSAT);
* GeoKeyDirectory exactly as GDAL writes a ``WGS 84 / UTM zone NN`` CRS (citation keys included).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TiffLayout", "gdal_rows_per_strip", "geokeys_utm", "utm_epsg"]

_SHORT, _LONG, _DOUBLE, _ASCII = 3, 4, 12, 2
_TYPE_SIZE = {_SHORT: 2, _LONG: 4, _DOUBLE: 8, _ASCII: 1}
_TYPE_CHAR = {_SHORT: "H", _LONG: "I", _DOUBLE: "d"}
#: Order in which libtiff/GDAL place out-of-line tag values after the IFD (observed on the real files).
_VALUE_ORDER = (258, 279, 273, 338, 339, 42112, 42113, 33550, 33922, 34735, 34737)
_TIEPOINT = 33922
_COMPRESSION = {"none": 1, "deflate": 8}
#: TIFF SampleFormat per numpy kind.
_SAMPLE_FORMAT = {"u": 1, "i": 2, "f": 3}


def utm_epsg(zone: int) -> int:
    """EPSG code of WGS 84 / UTM zone ``zone`` N (all four datasets are in the northern hemisphere)."""
    if not 1 <= zone <= 60:
        raise ValueError(f"UTM zone must be 1..60, not {zone}")
    return 32600 + zone


def geokeys_utm(zone: int) -> tuple[tuple[int, ...], str]:
    """GeoKeyDirectory and GeoAsciiParams exactly as GDAL writes them for EPSG:326zz."""
    citation = f"WGS 84 / UTM zone {zone}N|"
    ascii_params = f"{citation}WGS 84|"
    keys = (
        *(1, 1, 0, 7),  # version 1.1.0, 7 keys
        *(1024, 0, 1, 1),  # GTModelType = projected
        *(1025, 0, 1, 1),  # GTRasterType = PixelIsArea
        *(1026, 34737, len(citation), 0),  # GTCitation
        *(2049, 34737, len("WGS 84|"), len(citation)),  # GeogCitation
        *(2054, 0, 1, 9102),  # GeogAngularUnits = degree
        *(3072, 0, 1, utm_epsg(zone)),  # ProjectedCSType
        *(3076, 0, 1, 9001),  # ProjLinearUnits = metre
    )
    return keys, ascii_params


def gdal_rows_per_strip(width: int, samples: int, itemsize: int) -> int:
    """GDAL's default strip height for uncompressed GTiff: as many rows as fit in 8192 bytes (at least 1)."""
    return max(1, 8192 // (width * samples * itemsize))


@dataclass
class TiffLayout:
    """One GeoTIFF layout: size, dtype, bands, strips, compression, UTM zone, pixel size and extra GDAL tags.

    ``encode(array, ulx, uly)`` returns the whole file. ``short_bytecounts`` writes StripByteCounts as SHORT
    when there are several strips (what newer GDAL did for BigEarthNet v2); otherwise LONG (v1, EuroSAT).
    """

    width: int
    height: int
    dtype: str
    zone: int
    pixel_size: tuple[float, float]
    samples: int = 1
    rows_per_strip: int | None = None
    compression: str = "none"
    predictor: bool = False
    nodata: str | None = None
    gdal_metadata: str | None = None
    short_bytecounts: bool = False
    _template: bytes = field(init=False, repr=False)
    _tie_offset: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.np_dtype = np.dtype(self.dtype).newbyteorder("<")
        if self.compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {', '.join(_COMPRESSION)}")
        if self.rows_per_strip is None:
            self.rows_per_strip = gdal_rows_per_strip(self.width, self.samples, self.np_dtype.itemsize)
        self.rows_per_strip = min(self.rows_per_strip, self.height)  # GDAL clamps to the image height
        self.row_bytes = self.width * self.samples * self.np_dtype.itemsize
        self.n_strips = -(-self.height // self.rows_per_strip)
        self.raw_counts = [
            min(self.rows_per_strip, self.height - i * self.rows_per_strip) * self.row_bytes
            for i in range(self.n_strips)
        ]
        if self.compression == "none":
            self._template, self._tie_offset = self._header(0.0, 0.0, self.raw_counts)

    # ---- header ---------------------------------------------------------------------------------------
    def _entries(self, ulx: float, uly: float, counts: list[int], offsets: list[int]) -> list[tuple[int, int, list]]:
        s = self.samples
        keys, ascii_params = geokeys_utm(self.zone)
        bits = self.np_dtype.itemsize * 8
        fmt = _SAMPLE_FORMAT[self.np_dtype.kind]
        count_type = _SHORT if (self.short_bytecounts and len(counts) > 1 and max(counts) < 65536) else _LONG
        entries: list[tuple[int, int, list]] = [
            (256, _SHORT, [self.width]),
            (257, _SHORT, [self.height]),
            (258, _SHORT, [bits] * s),
            (259, _SHORT, [_COMPRESSION[self.compression]]),
            (262, _SHORT, [1]),  # MinIsBlack
            (273, _LONG, offsets),
            (277, _SHORT, [s]),
            (278, _SHORT, [self.rows_per_strip]),
            (279, count_type, counts),
            (284, _SHORT, [1]),  # PlanarConfiguration: contiguous (pixel-interleaved)
        ]
        if self.predictor:
            entries.append((317, _SHORT, [2]))
        if s > 1:
            entries.append((338, _SHORT, [0] * (s - 1)))  # ExtraSamples: unspecified
        entries += [
            (339, _SHORT, [fmt] * s),
            (33550, _DOUBLE, [float(self.pixel_size[0]), float(self.pixel_size[1]), 0.0]),
            (33922, _DOUBLE, [0.0, 0.0, 0.0, float(ulx), float(uly), 0.0]),
            (34735, _SHORT, list(keys)),
            (34737, _ASCII, [ascii_params]),
        ]
        if self.gdal_metadata is not None:
            entries.append((42112, _ASCII, [self.gdal_metadata]))
        if self.nodata is not None:
            entries.append((42113, _ASCII, [self.nodata]))
        return sorted(entries, key=lambda e: e[0])

    @staticmethod
    def _pack(typ: int, values: list) -> bytes:
        if typ == _ASCII:
            return values[0].encode("ascii") + b"\0"
        return struct.pack(f"<{len(values)}{_TYPE_CHAR[typ]}", *values)

    def _header(self, ulx: float, uly: float, counts: list[int]) -> tuple[bytes, int]:
        """Header bytes (up to the first strip) and the byte offset of the tie point's x value."""
        # Two passes: the strip offsets depend on the header length, which does not depend on their values.
        entries = self._entries(ulx, uly, counts, [0] * len(counts))
        n = len(entries)
        ifd_end = 8 + 2 + 12 * n + 4
        order = {tag: i for i, tag in enumerate(_VALUE_ORDER)}
        outside = sorted(
            (e for e in entries if len(self._pack(e[1], e[2])) > 4), key=lambda e: order.get(e[0], len(order))
        )
        pos = ifd_end
        where: dict[int, int] = {}
        for tag, typ, values in outside:
            pos += pos & 1
            where[tag] = pos
            pos += len(self._pack(typ, values))
        data_start = pos + (pos & 1)
        offsets, at = [], data_start
        for c in counts:
            offsets.append(at)
            at += c
        entries = self._entries(ulx, uly, counts, offsets)
        buf = bytearray(data_start)
        buf[0:8] = b"II*\x00" + struct.pack("<I", 8)
        struct.pack_into("<H", buf, 8, n)
        for i, (tag, typ, values) in enumerate(entries):
            raw = self._pack(typ, values)
            count = len(raw) if typ == _ASCII else len(values)
            base = 10 + 12 * i
            struct.pack_into("<HHI", buf, base, tag, typ, count)
            if tag in where:
                struct.pack_into("<I", buf, base + 8, where[tag])
                buf[where[tag] : where[tag] + len(raw)] = raw
            else:
                buf[base + 8 : base + 8 + len(raw)] = raw
        struct.pack_into("<I", buf, 10 + 12 * n, 0)  # no next IFD
        return bytes(buf), where[_TIEPOINT] + 24

    # ---- encoding -------------------------------------------------------------------------------------
    def _check(self, array: np.ndarray) -> np.ndarray:
        shape = (self.height, self.width) if self.samples == 1 else (self.height, self.width, self.samples)
        if array.shape != shape:
            raise ValueError(f"array shape {array.shape} does not match the layout {shape}")
        return np.ascontiguousarray(array, dtype=self.np_dtype)

    def encode(self, array: np.ndarray, ulx: float, uly: float) -> bytes:
        """The whole file for ``array`` ([H, W] or [H, W, samples]) with its upper-left corner at (ulx, uly)."""
        array = self._check(array)
        if self.compression == "none":
            head = bytearray(self._template)
            struct.pack_into("<dd", head, self._tie_offset, float(ulx), float(uly))
            return bytes(head) + array.tobytes()
        rows = array.reshape(self.height, -1)
        if self.predictor:  # horizontal differencing per sample, wrapping in the sample's own type
            rows = array.copy()
            rows[:, 1:] = array[:, 1:] - array[:, :-1]
            rows = rows.reshape(self.height, -1)
        rps = self.rows_per_strip
        assert rps is not None
        strips = [zlib.compress(rows[i : i + rps].tobytes(), 6) for i in range(0, self.height, rps)]
        head, _ = self._header(ulx, uly, [len(s) for s in strips])
        return head + b"".join(strips)

    def header_size(self) -> int:
        """Bytes before the first strip (uncompressed layouts)."""
        return len(self._template)
