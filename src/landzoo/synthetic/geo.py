"""Georeferencing and product naming, so synthetic patches sit where the real ones do.

Everything here is reproduced from the real files (the tests check each against ``shared/fixtures``):

* the WKT1 string of the v1 JSONs (GDAL 2 style, with AXIS entries) for WGS 84 / UTM zone NN;
* the upper-left corner of a Sentinel-2 tile from its MGRS name (the 100 km square, snapped to the
  60 m grid the way ESA does: e.g. ``T33UUP`` -> (300000, 5400000), ``T29UPU`` -> (600000, 5900040));
  BigEarthNet patch (col, row) then sits at ``(x0 + 1200 col, y0 - 1200 row)``;
* the Sentinel-2 relative orbit from the acquisition time (143 orbits in 10 days; S2B half a cycle
  behind S2A), which matches all 480,038 v2 patch ids of the official metadata;
* plausible L1C product and S1 scene names (generation time, datatake id: not derivable, so hashed).
"""

from __future__ import annotations

import math
import zlib
from datetime import datetime, timedelta

__all__ = [
    "PATCH_METRES",
    "l1c_product_name",
    "mgrs_tile_origin",
    "relative_orbit",
    "s1_scene_source",
    "utm_wkt",
]

PATCH_METRES = 1200

_WKT = (
    'PROJCS["WGS 84 / UTM zone {zone}N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
    'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],AXIS["Longitude",EAST],'
    'AUTHORITY["EPSG","4326"]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],'
    'PARAMETER["central_meridian",{meridian}],PARAMETER["scale_factor",0.9996],PARAMETER["false_easting",500000],'
    'PARAMETER["false_northing",0],UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["Easting",EAST],'
    'AXIS["Northing",NORTH],AUTHORITY["EPSG","326{zone:02d}"]]'
)


def utm_wkt(zone: int) -> str:
    """The ``projection`` string of a BigEarthNet v1 JSON for WGS 84 / UTM zone ``zone`` N."""
    return _WKT.format(zone=zone, meridian=6 * zone - 183)


_ROW_LETTERS = "ABCDEFGHJKLMNPQRSTUV"  # MGRS 100 km row letters (no I, O), cycle of 2,000 km
_COL_SETS = ("STUVWXYZ", "ABCDEFGH", "JKLMNPQR")  # by zone % 3
_BANDS = "CDEFGHJKLMNPQRSTUVWX"  # latitude bands of 8 degrees from 80 S


def _northing(lat_deg: float) -> float:
    """Approximate UTM northing of a latitude on the central meridian (metres, enough to pick a row cycle)."""
    phi = math.radians(lat_deg)
    return 0.9996 * (6367449.146 * phi - 16038.509 * math.sin(2 * phi) + 16.833 * math.sin(4 * phi))


def mgrs_tile_origin(tile: str) -> tuple[int, int]:
    """Upper-left corner (UTM metres) of Sentinel-2 tile ``tile`` (``"T33UUP"`` or ``"33UUP"``)."""
    t = tile[1:] if tile.startswith("T") else tile
    zone, band, col, row = int(t[:2]), t[2], t[3], t[4]
    east = (_COL_SETS[zone % 3].index(col) + 1) * 100_000
    offset = 0 if zone % 2 else 5  # row letters start at A (odd zones) or F (even zones) at the equator
    base = ((_ROW_LETTERS.index(row) - offset) % 20) * 100_000
    lat0 = -80 + 8 * _BANDS.index(band)
    lo, hi = _northing(lat0) - 100_000, _northing(lat0 + (12 if band == "X" else 8))
    south = next(base + k * 2_000_000 for k in range(5) if lo <= base + k * 2_000_000 <= hi)
    # ESA snaps tile corners to the 60 m grid: x down, y up.
    return (east // 60) * 60, -((-(south + 100_000)) // 60) * 60


def patch_corner(tile: str, col: int, row: int) -> tuple[int, int]:
    """Upper-left corner of BigEarthNet patch (col, row) of ``tile``: 1200 m steps east and south."""
    x0, y0 = mgrs_tile_origin(tile)
    return x0 + PATCH_METRES * col, y0 - PATCH_METRES * row


_S2A_REF = datetime(2017, 6, 13, 10, 10, 31)  # S2A, relative orbit 22 (T33UUP)
_ORBIT_S = 10 * 86400 / 143


def relative_orbit(satellite: str, when: datetime) -> int:
    """Sentinel-2 relative orbit (1..143) of an acquisition by ``S2A``/``S2B`` at ``when``."""
    x = (when - _S2A_REF).total_seconds() / _ORBIT_S - (71.5 if satellite == "S2B" else 0.0)
    return (22 - 1 + round(x)) % 143 + 1


def _hash(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def l1c_product_name(satellite: str, stamp: str, when: datetime, tile: str) -> str:
    """The L1C SAFE name of a v1 JSON's ``tile_source``; ``stamp`` is the name's time text (quirk kept).

    Baseline N0205 before 2017-10-23 (when ESA switched to 02.06), N0206 after; the generation time
    is the sensing time plus a hashed delay (seconds to two hours, as in the real names).
    """
    baseline = "N0205" if when < datetime(2017, 10, 23) else "N0206"
    delay = timedelta(seconds=(_hash(satellite, stamp, tile) % 7200) - 5)
    gen = (when + delay).strftime("%Y%m%dT%H%M%S")
    return f"{satellite}_MSIL1C_{stamp}_{baseline}_R{relative_orbit(satellite, when):03d}_{tile}_{gen}.SAFE"


_S1_REF = {
    "S1A": (datetime(2017, 6, 13, 16, 50, 43), 17018, 0x01C579),
    "S1B": (datetime(2017, 6, 12, 16, 58, 9), 6147, 0x00AD0C),
}
_S1_ORBIT_S = 12 * 86400 / 175


def s1_scene_source(satellite: str, start: datetime) -> str:
    """An S1 GRD scene name (start, stop = start + 25 s, absolute orbit, datatake, unique id) for ``start``."""
    ref, orbit0, take0 = _S1_REF[satellite]
    orbit = orbit0 + math.floor((start - ref).total_seconds() / _S1_ORBIT_S + 0.5)
    take = take0 + round(7.86 * (orbit - orbit0))
    uid = _hash(satellite, start.isoformat()) & 0xFFFF
    stop = start + timedelta(seconds=25)
    fmt = "%Y%m%dT%H%M%S"
    return f"{satellite}_IW_GRDH_1SDV_{start.strftime(fmt)}_{stop.strftime(fmt)}_{orbit:06d}_{take:06X}_{uid:04X}"
