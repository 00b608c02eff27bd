"""The map files: filled row by row as the map is made, then published as Cloud-Optimised GeoTIFFs, atomically.

Three rasters per scene, on the map grid (pixel = stride, the scene's CRS), each a COG (DEFLATE, 256 px
blocks, overviews) written through :func:`landzoo.files.atomic_write`:

* ``<scene>_probs.tif``: one band per class (band description = class name). ``uint8``: probability x 250,
  rounded half up (``floor(p * 250 + 0.5)``), nodata 255, GDAL scale 1/250 so readers that honour it see
  probabilities; ``float16``/``float32``: the probability itself, nodata NaN.
* ``<scene>_labels.tif``: the multi-label decision, one 0/1 band per class (``p >= threshold``), nodata 255.
* ``<scene>_class.tif``: the most probable class (index into the class list, tagged ``CLASS_<i>``) with an
  embedded colour table, nodata 255. It is a file of its own because a GeoTIFF keeps a colour table only on a
  single-band image (GDAL refuses one on a band of a multi-band TIFF), and the colours are what make the map
  open correctly in QGIS.

Rows go first into uncompressed staging GeoTIFFs beside the outputs (``.<scene>_*.stage.<pid>.tmp``), so the
map never has to fit in memory whatever the stride; the COG driver then writes the tiled, compressed file with
its overviews, through GDAL's block cache. A crash leaves only ``.tmp`` files, which a rerun removes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landzoo.files import atomic_write
from landzoo.mapping.colours import NODATA_RGBA, class_colours
from landzoo.mapping.errors import MapError, gdal_reason, raster_errors
from landzoo.mapping.grid import WindowGrid

__all__ = ["DTYPES", "OUTPUTS", "UINT8_NODATA", "UINT8_SCALE", "MapWriter", "quantise"]

#: Output kinds and their file suffixes.
OUTPUTS = {"probs": "_probs.tif", "labels": "_labels.tif", "class": "_class.tif"}
#: Probability encodings of ``--dtype``.
DTYPES = ("uint8", "float16", "float32")
UINT8_SCALE = 250
UINT8_NODATA = 255
_COG = {"COMPRESS": "DEFLATE", "BLOCKSIZE": "256", "BIGTIFF": "IF_SAFER", "OVERVIEWS": "AUTO"}


def quantise(p: np.ndarray) -> np.ndarray:
    """Probabilities -> uint8 0..250 (half up); NaN -> 255."""
    out = np.floor(p.astype(np.float64) * UINT8_SCALE + 0.5)
    out = np.where(np.isnan(p), UINT8_NODATA, np.clip(out, 0, UINT8_SCALE))
    return out.astype(np.uint8)


class MapWriter:
    """Receives complete map rows (``[cols, classes]`` float32, NaN = nodata) and writes the three rasters."""

    def __init__(
        self,
        out_dir: Path,
        stem: str,
        grid: WindowGrid,
        crs: Any,
        classes: Sequence[str],
        *,
        dtype: str,
        threshold: float,
        tags: dict[str, str],
        keep_every: int = 1,
    ) -> None:
        import rasterio
        from affine import Affine

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}")
        self.out_dir, self.stem, self.grid = Path(out_dir), stem, grid
        self.classes = list(classes)
        self.dtype, self.threshold = dtype, threshold
        self.keep_every = max(1, keep_every)
        k = len(self.classes)
        self.labelled = np.zeros(k, dtype=np.int64)
        self.top = np.zeros(k, dtype=np.int64)
        self.nodata_cells = 0
        self.kept_class_rows: list[np.ndarray] = []
        self.colours = class_colours(self.classes)
        base = {
            "driver": "GTiff",
            "width": grid.cell_cols,
            "height": grid.cell_rows,
            "crs": crs,
            "transform": Affine(*grid.transform),
        }
        float_probs = dtype != "uint8"
        probs_profile = dict(
            base, count=k, dtype="float32" if float_probs else "uint8", nodata=np.nan if float_probs else UINT8_NODATA
        )
        if dtype == "float16":
            probs_profile["nbits"] = 16  # GDAL stores IEEE half floats for Float32 with NBITS=16
        profiles = {
            "probs": probs_profile,
            "labels": dict(base, count=k, dtype="uint8", nodata=UINT8_NODATA),
            "class": dict(base, count=1, dtype="uint8", nodata=UINT8_NODATA),
        }
        self.stage = {kind: self.out_dir / f".{stem}{sfx}.stage.{os.getpid()}.tmp" for kind, sfx in OUTPUTS.items()}
        self.ds: dict[str, Any] = {}
        try:
            for kind, prof in profiles.items():
                self.ds[kind] = rasterio.open(self.stage[kind], "w", **prof)
            self._describe(tags)
        except BaseException:
            self.abort()
            raise

    def _describe(self, tags: dict[str, str]) -> None:
        common = {**tags, "CLASSES": json.dumps(self.classes)}
        probs, labels, cls = self.ds["probs"], self.ds["labels"], self.ds["class"]
        for i, name in enumerate(self.classes, 1):
            probs.set_band_description(i, name)
            labels.set_band_description(i, name)
        if self.dtype == "uint8":
            probs.scales = (1.0 / UINT8_SCALE,) * len(self.classes)
            probs.offsets = (0.0,) * len(self.classes)
        probs.update_tags(**common, CONTENT=f"class probability ({self.dtype})")
        labels.update_tags(**common, CONTENT=f"multi-label decision, probability >= {self.threshold:g}")
        cls.set_band_description(1, "most probable class")
        cls.update_tags(
            **common, CONTENT="most probable class", **{f"CLASS_{i}": c for i, c in enumerate(self.classes)}
        )
        cmap = {i: (*rgb, 255) for i, rgb in enumerate(self.colours)}
        cmap[UINT8_NODATA] = NODATA_RGBA
        cls.write_colormap(1, cmap)

    def write_row(self, row: int, probs: np.ndarray) -> None:
        """Map row ``row``: mean probabilities ``[cols, classes]`` (NaN where no window was scored)."""
        from rasterio.windows import Window

        valid = ~np.isnan(probs[:, 0])
        win = Window(0, row, self.grid.cell_cols, 1)
        pt = probs.T[:, None, :]  # [classes, 1, cols]
        if self.dtype == "uint8":
            data = quantise(pt)
        elif self.dtype == "float16":
            data = pt.astype(np.float16).astype(np.float32)  # rounded here, so GDAL's conversion is exact
        else:
            data = np.ascontiguousarray(pt, dtype=np.float32)
        decided = np.where(np.isnan(pt), UINT8_NODATA, pt >= self.threshold).astype(np.uint8)
        top = np.where(valid, np.argmax(np.where(np.isnan(probs), -1, probs), axis=1), UINT8_NODATA).astype(np.uint8)
        for kind, values in (("probs", data), ("labels", decided), ("class", top[None, None, :])):
            try:
                self.ds[kind].write(values, window=win)
            except raster_errors() as err:  # a full disk, a write error of the driver
                raise MapError(f"cannot write {self.stage[kind]}: {gdal_reason(err)}") from None
        self.labelled += (decided[:, 0, :] == 1).sum(axis=1)
        self.top += np.bincount(top[valid], minlength=len(self.classes))[: len(self.classes)]
        self.nodata_cells += int((~valid).sum())
        if row % self.keep_every == 0:
            self.kept_class_rows.append(top[:: self.keep_every].copy())

    def finish(self) -> dict[str, Path]:
        """Close the staging files and publish each as a COG (atomic); returns kind -> final path."""
        import rasterio.shutil

        for kind, ds in self.ds.items():
            try:
                ds.close()  # flushes the last blocks
            except raster_errors() as err:
                self.abort()
                raise MapError(f"cannot write {self.stage[kind]}: {gdal_reason(err)}") from None
        resampling = {"probs": "AVERAGE", "labels": "NEAREST", "class": "MODE"}
        out: dict[str, Path] = {}
        try:
            for kind, sfx in OUTPUTS.items():
                target = self.out_dir / f"{self.stem}{sfx}"
                opts = dict(_COG, OVERVIEW_RESAMPLING=resampling[kind])
                if kind == "probs":
                    opts["PREDICTOR"] = "YES"

                def write(tmp: Path, src: Path = self.stage[kind], opts: dict[str, str] = opts) -> None:
                    rasterio.shutil.copy(src, tmp, driver="COG", **opts)

                try:
                    out[kind] = atomic_write(target, write)
                except raster_errors() as err:
                    raise MapError(f"cannot write {target}: {gdal_reason(err)}") from None
        finally:
            self.abort()
        return out

    def abort(self) -> None:
        """Close and remove the staging files (after finishing, or on an error)."""
        for ds in self.ds.values():
            if not ds.closed:
                ds.close()
        for path in self.stage.values():
            path.unlink(missing_ok=True)

    def class_preview(self) -> np.ndarray:
        """The most probable class at every ``keep_every``-th map row and column (for the quicklook)."""
        if not self.kept_class_rows:
            return np.zeros((0, 0), dtype=np.uint8)
        return np.stack(self.kept_class_rows)
