"""``<scene>_quicklook.png``: the scene in true colour beside its map of most probable classes, with a legend.

The true-colour panel comes from the B04/B03/B02 rows the reader already holds (every n-th row and column,
no second pass over the scene) or, when the model does not read those bands, from a decimated read of the
scene's own files. Reflectance is stretched per channel between its 2nd and 98th percentile over valid
pixels that are not cloud-bright. Both panels share one extent in kilometres from the scene's corner; nodata is
shown in grey. The PNG carries no timestamp or software version, so the same map gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from landzoo.files import atomic_write
from landzoo.mapping.colours import class_colours
from landzoo.mapping.errors import MapError, gdal_reason, raster_errors
from landzoo.mapping.reader import RGB
from landzoo.mapping.sources import Layer

__all__ = ["read_rgb", "render_quicklook", "stretch"]

_NODATA_GREY = (0.55, 0.55, 0.55)


#: Reflectance (x 10,000) above which a pixel is left out of the stretch: clouds and snow would darken the land.
_BRIGHT = 4000.0


def stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[3, h, w]`` reflectance -> ``[h, w, 3]`` in [0, 1]: 2-98 % per channel over valid, not-bright pixels."""
    out = np.empty((*rgb.shape[1:], 3), dtype=np.float32)
    land = valid & (rgb.max(axis=0) < _BRIGHT)
    sample = land if land.sum() > 100 else valid
    for c in range(3):
        band = rgb[c].astype(np.float32)
        lo, hi = np.percentile(band[sample], (2, 98)) if sample.any() else (0.0, 1.0)
        out[..., c] = np.clip((band - lo) / max(float(hi - lo), 1e-6), 0, 1)
    out[~valid] = _NODATA_GREY
    return out


def read_rgb(layers: dict[str, Layer], width_m: int, height_m: int, step: int) -> np.ndarray | None:
    """B04, B03, B02 of the scene every ``step`` 10 m pixels by a decimated read (when the reader had none)."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    if not all(b in layers for b in RGB):
        return None
    shape = (max(1, -(-height_m // 10 // step)), max(1, -(-width_m // 10 // step)))
    out = []
    for band in RGB:
        la = layers[band]
        window = Window(0, 0, width_m // 10 * la.factor, height_m // 10 * la.factor)
        try:
            with rasterio.open(la.file.path) as ds:
                out.append(ds.read(la.file.index, window=window, out_shape=shape, resampling=Resampling.nearest))
        except raster_errors() as err:
            raise MapError(f"cannot read {la.file.path} (band {band}) for the quicklook: {gdal_reason(err)}") from None
    return np.stack(out)


def render_quicklook(
    path: Path,
    rgb: np.ndarray | None,
    rgb_nodata: np.ndarray | None,
    classes_map: np.ndarray,
    classes: Sequence[str],
    extent_km: tuple[float, float],
    title: str,
    areas_km2: dict[str, float],
) -> Path:
    """Write the PNG atomically: true colour (if any) | class map, and a legend of the classes present."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = np.array([(*c, 255) for c in class_colours(classes)] + [(0, 0, 0, 0)], dtype=np.uint8)
    index = np.where(classes_map == 255, len(classes), classes_map).astype(np.int64)
    rgba = colours[np.clip(index, 0, len(classes))] if classes_map.size else np.zeros((1, 1, 4), np.uint8)
    panels = 2 if rgb is not None else 1
    fig = plt.figure(figsize=(6.2 * panels + 4.6, 6.4), dpi=100)
    grid = fig.add_gridspec(1, panels + 1, width_ratios=[1] * panels + [0.75])
    w_km, h_km = extent_km
    extent = (0, w_km, 0, h_km)
    axes = []
    if rgb is not None:
        ax = fig.add_subplot(grid[0, 0])
        valid = np.ones(rgb.shape[1:], bool) if rgb_nodata is None else ~rgb_nodata
        ax.imshow(stretch(rgb, valid), extent=extent, interpolation="nearest")
        ax.set_title("true colour (B04, B03, B02)", fontsize=10)
        axes.append(ax)
    ax = fig.add_subplot(grid[0, panels - 1])
    ax.set_facecolor(_NODATA_GREY)
    ax.imshow(rgba, extent=extent, interpolation="nearest")
    ax.set_title("most probable class", fontsize=10)
    axes.append(ax)
    for a in axes:
        a.set_xlabel("km east of the scene corner", fontsize=8)
        a.set_ylabel("km north", fontsize=8)
        a.tick_params(labelsize=7)
    legend_ax = fig.add_subplot(grid[0, panels])
    legend_ax.axis("off")
    present = [i for i, c in enumerate(classes) if areas_km2.get(c, 0) > 0] or list(range(len(classes)))
    present.sort(key=lambda i: -areas_km2.get(classes[i], 0))
    handles = [
        Patch(
            facecolor=colours[i][:3] / 255,
            edgecolor="0.3",
            label=f"{_short(classes[i])}  {areas_km2.get(classes[i], 0):,.1f} km²",
        )
        for i in present
    ]
    legend_ax.legend(
        handles=handles, loc="center left", fontsize=7.5, frameon=False, title="class, area as most probable"
    )
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()

    def write(tmp: Path) -> None:
        fig.savefig(tmp, format="png", metadata={"Software": None})

    try:
        return atomic_write(path, write)
    finally:
        plt.close(fig)


def _short(name: str, limit: int = 48) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
