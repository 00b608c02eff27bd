"""The sliding-window grid over a scene and the map grid it is averaged onto.

Windows are the model's patch footprint (1200 m, a BigEarthNet patch) placed every ``stride`` metres from
the scene's upper-left corner, so with the default stride (= footprint) on a Sentinel-2 tile they are exactly
BigEarthNet's patch grid (patch (col, row) at ``x0 + 1200 col, y0 - 1200 row``). The map has one pixel per
stride step: with ``k = footprint / stride`` a window covers ``k x k`` map pixels and a map pixel is the mean
of the (up to ``k x k``) windows that cover it. Requirements, checked with a one-line error:

* the stride divides the footprint (else windows would not tile the map pixels evenly), and
* the stride is a whole number of pixels of every band group read (20 m for the paper's 10 bands, 60 m with
  B01/B09), so every window starts on a pixel of every grid.

A full tile (109,800 m) at the default stride has 91 x 91 = 8,281 windows; the last 600 m strip on the right
and bottom, narrower than a window, is not covered (its map pixels do not exist). At 600 m: 182 x 182 windows,
183 x 183 map pixels covering the whole tile.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from landzoo import contract
from landzoo.mapping.errors import MapError

__all__ = ["FOOTPRINT_M", "WindowGrid"]

#: Ground footprint of one window: a BigEarthNet patch side, in metres.
FOOTPRINT_M = contract.BEN_PATCH_METRES


@dataclass(frozen=True)
class WindowGrid:
    """Windows of ``footprint`` m every ``stride`` m over a ``width_m`` x ``height_m`` scene at ``origin``."""

    origin: tuple[float, float]
    width_m: int
    height_m: int
    stride: int = FOOTPRINT_M
    footprint: int = FOOTPRINT_M

    @classmethod
    def build(
        cls, origin: tuple[float, float], width_m: int, height_m: int, stride: int, pixel_sizes: Iterable[int]
    ) -> WindowGrid:
        """A checked grid; ``pixel_sizes`` are the native pixel sizes (m) of every grid that is read."""
        sizes = sorted(set(pixel_sizes))
        if stride <= 0 or FOOTPRINT_M % stride:
            raise MapError(
                f"--stride {stride} m must divide the {FOOTPRINT_M} m window footprint "
                "(e.g. 1200, 600, 400, 300, 240, 200, 120)"
            )
        bad = [s for s in sizes if stride % s]
        if bad:
            raise MapError(
                f"--stride {stride} m is not a whole number of {bad[-1]} m pixels; with the bands read "
                f"({', '.join(f'{s} m' for s in sizes)}) the stride must be a multiple of {max(sizes)} m"
            )
        if width_m < FOOTPRINT_M or height_m < FOOTPRINT_M:
            raise MapError(f"the scene covers {width_m} m x {height_m} m, less than one {FOOTPRINT_M} m window")
        return cls(origin, int(width_m), int(height_m), int(stride))

    @property
    def k(self) -> int:
        """Windows per map pixel side: footprint / stride."""
        return self.footprint // self.stride

    @property
    def rows(self) -> int:
        return (self.height_m - self.footprint) // self.stride + 1

    @property
    def cols(self) -> int:
        return (self.width_m - self.footprint) // self.stride + 1

    @property
    def windows(self) -> int:
        return self.rows * self.cols

    @property
    def cell_rows(self) -> int:
        return self.rows + self.k - 1

    @property
    def cell_cols(self) -> int:
        return self.cols + self.k - 1

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-order affine coefficients (a, b, c, d, e, f) of the map: pixel = stride, same corner as the scene."""
        return (float(self.stride), 0.0, float(self.origin[0]), 0.0, -float(self.stride), float(self.origin[1]))

    def px(self, gsd: int) -> tuple[int, int]:
        """(window side, stride) in pixels of a ``gsd`` m grid."""
        return self.footprint // gsd, self.stride // gsd

    def window_bounds(self, row: int, col: int) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the scene CRS of window (row, col)."""
        left = self.origin[0] + col * self.stride
        top = self.origin[1] - row * self.stride
        return left, top - self.footprint, left + self.footprint, top

    def uncovered_m(self) -> dict[str, int]:
        """Metres of the scene right and below the map (narrower than a window)."""
        return {
            "right": self.width_m - self.cell_cols * self.stride,
            "bottom": self.height_m - self.cell_rows * self.stride,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "footprint_m": self.footprint,
            "stride_m": self.stride,
            "window_rows": self.rows,
            "window_cols": self.cols,
            "windows": self.windows,
            "map_size": [self.cell_rows, self.cell_cols],
            "map_transform": list(self.transform),
            "uncovered_m": self.uncovered_m(),
        }
