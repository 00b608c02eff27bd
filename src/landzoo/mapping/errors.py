"""The mapping stage's user-facing error (one line at the CLI, exit 2)."""

from __future__ import annotations

from landzoo.errors import LandzooError

__all__ = ["MapError", "gdal_reason", "raster_errors"]


class MapError(LandzooError):
    """Bad mapping input: a scene, band file, option or checkpoint that cannot be mapped; the message names it."""


def gdal_reason(err: BaseException) -> str:
    """The most specific line of an exception chain: rasterio wraps GDAL's reason in generic errors."""
    seen: list[str] = []
    e: BaseException | None = err
    while e is not None and len(seen) < 8:
        line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if "See previous exception" not in line and line not in seen:
            seen.append(line)
        e = e.__cause__ or e.__context__
    return seen[-1] if seen else type(err).__name__


def raster_errors() -> tuple[type[BaseException], ...]:
    """What rasterio and GDAL raise on a failed read or write (GDAL's ``CPLE_*`` errors are not ``OSError``s)."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    return (RasterioError, CPLE_BaseError)
