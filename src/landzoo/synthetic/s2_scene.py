"""Pixels of a synthetic Sentinel-2 L2A scene: a landscape of BigEarthNet patches, clouds, SCL, a nodata corner.

The scene is drawn on BigEarthNet's own grid: every 1200 m cell is rendered by exactly the code that renders a
synthetic BigEarthNet-v1 patch (:func:`landzoo.synthetic.bigearthnet_v1.render_ben`, native 10/20/60 m band
sizes, L2A atmosphere), so a model trained on synthetic BigEarthNet sees familiar patches, and a window of the
map grid at the default stride IS one such patch (the consistency test relies on it). Which classes a cell gets
follows a landscape (:data:`REGIONS`: forest, farmland, town, lake, wetland, upland as smooth regions several
kilometres across), with cells on a region border mixing both regions' classes, and a few rivers.

On top, as a product would show them: clouds (a smooth field at 60 m, thresholded to ``clouds`` of the area;
bright, flat spectra blended in, and their shadows offset to the south-east), the scene classification layer
(SCL: 9/8/10 for dense/medium/thin cloud, 3 shadow, 4 vegetation, 5 not vegetated, 6 water, 0 nodata), and the
empty corner of a tile at the swath edge (a triangle of value 0 in every band). Everything is a pure function of
the seed and the cell position, so scenes are identical whatever the number of worker processes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from landzoo import contract
from landzoo.synthetic import scene
from landzoo.synthetic.bigearthnet_v1 import PHENOLOGY, render_ben

__all__ = ["REGIONS", "SceneSpec", "cell_classes", "landscape", "render_row"]

#: Region kinds of the landscape: BigEarthNet-43 classes drawn in a region and their relative frequency.
REGIONS: Final = {
    "forest": (
        ("Coniferous forest", "Mixed forest", "Broad-leaved forest", "Transitional woodland/shrub"),
        (0.35, 0.3, 0.2, 0.15),
    ),
    "farmland": (
        (
            "Non-irrigated arable land",
            "Pastures",
            "Complex cultivation patterns",
            "Land principally occupied by agriculture, with significant areas of natural vegetation",
        ),
        (0.4, 0.25, 0.2, 0.15),
    ),
    "town": (
        (
            "Discontinuous urban fabric",
            "Continuous urban fabric",
            "Industrial or commercial units",
            "Green urban areas",
        ),
        (0.5, 0.2, 0.2, 0.1),
    ),
    "lake": (("Water bodies",), (1.0,)),
    "wetland": (("Peatbogs", "Inland marshes", "Moors and heathland"), (0.4, 0.4, 0.2)),
    "upland": (("Natural grassland", "Sparsely vegetated areas", "Moors and heathland"), (0.5, 0.3, 0.2)),
}
#: Relative area bias of each region (log scale added to its field).
_REGION_BIAS: Final = {"forest": 0.6, "farmland": 0.7, "town": -0.4, "lake": -0.9, "wetland": -0.7, "upland": -0.3}
_RIVER: Final = "Water courses"
_SALT: Final = zlib.crc32(b"s2-scene")
#: Reflectance (x 10,000) of cloud tops at each L2A band's wavelength: bright and flat, darker in the SWIR.
_CLOUD_NM: Final = (443, 865, 1610, 2190)
_CLOUD_DN: Final = (7600, 7200, 4800, 3300)


@dataclass(frozen=True)
class SceneSpec:
    """Size (10 m pixels, a multiple of 6 so 20 m and 60 m grids align), seed, clouds and nodata corner."""

    size_px: int
    seed: int = 0
    clouds: float = 0.0
    nodata_corner: float = 0.1
    phenology: float = PHENOLOGY["Summer"]

    @property
    def cells(self) -> int:
        """BigEarthNet cells per side (the last one may stick out of the scene and is cropped)."""
        return -(-self.size_px // (contract.BEN_PATCH_METRES // 10))


def _smooth(rng: np.random.Generator, n: int, size: int, sigma: float) -> np.ndarray:
    white = rng.standard_normal((n, size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    lowpass = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    field = np.fft.irfft2(np.fft.rfft2(white) * lowpass, s=(size, size))
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + 1e-9
    return field


def landscape(spec: SceneSpec) -> np.ndarray:
    """Region index (into :data:`REGIONS`) of every BigEarthNet cell, ``[cells, cells]``: smooth regions."""
    n = spec.cells
    rng = np.random.default_rng([spec.seed, _SALT, 0])
    pad = max(n, 16)
    fields = _smooth(rng, len(REGIONS), pad, sigma=3.0)[:, :n, :n]
    bias = np.array([_REGION_BIAS[r] for r in REGIONS])[:, None, None]
    return np.argmax(fields + bias, axis=0)


def cell_classes(regions: np.ndarray, row: int, col: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """BigEarthNet-43 classes of one cell and their relative areas: its region's, a neighbour's, maybe a river."""
    names = list(REGIONS)
    own = names[regions[row, col]]
    pool, freq = REGIONS[own]
    k = min(len(pool), int(rng.choice((1, 2, 3), p=(0.35, 0.45, 0.2))))
    classes = list(rng.choice(pool, size=k, replace=False, p=np.asarray(freq) / np.sum(freq)))
    weights = list(rng.dirichlet(np.full(k, 2.0)) * 2.0)
    neighbours = {
        names[regions[r, c]]
        for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
        if 0 <= r < regions.shape[0] and 0 <= c < regions.shape[1]
    } - {own}
    if neighbours and rng.random() < 0.7:
        other = sorted(neighbours)[int(rng.integers(len(neighbours)))]
        opool, ofreq = REGIONS[other]
        extra = str(rng.choice(opool, p=np.asarray(ofreq) / np.sum(ofreq)))
        if extra not in classes:
            classes.append(extra)
            weights.append(float(rng.uniform(0.3, 1.0)))
    if own != "lake" and rng.random() < 0.06:
        classes.append(_RIVER)
        weights.append(1.0)
    return [str(c) for c in classes], np.asarray(weights, dtype=np.float64)


def render_row(spec: SceneSpec, regions: np.ndarray, row: int, bank: scene.Bank) -> dict[str, Any]:
    """Surface DNs (training convention, no offset) of one row of cells, every L2A band at its native size.

    Returns ``{"bands": {band: uint16 [rows, width]}, "labels": [[BEN-19 names] per cell]}``, cropped to the
    scene width.
    """
    n = spec.cells
    out: dict[str, np.ndarray] = {}
    labels: list[dict[str, Any]] = []
    for col in range(n):
        rng = np.random.default_rng([spec.seed, _SALT, 1, row, col])
        classes, weights = cell_classes(regions, row, col, rng)
        _, bands, present = render_ben(rng, bank, classes, weights, spec.phenology)
        for name, arr in bands.items():
            if name not in out:
                out[name] = np.empty((arr.shape[0], arr.shape[1] * n), dtype=np.uint16)
            out[name][:, col * arr.shape[1] : (col + 1) * arr.shape[1]] = arr
        labels.append({"row": row, "col": col, "ben43": present, "ben19": contract.ben43_to_ben19(present)})
    cropped = {}
    for name, arr in out.items():
        px = spec.size_px * 10 // contract.band(name).gsd_m
        cropped[name] = np.ascontiguousarray(arr[:, :px])
    return {"bands": cropped, "labels": labels}


# --------------------------------------------------------------------------------------------------
# clouds, shadows, SCL and the nodata corner, per strip of rows
# --------------------------------------------------------------------------------------------------


def cloud_field(spec: SceneSpec) -> np.ndarray | None:
    """Cloud opacity in [0, 1] on the 60 m grid of the whole scene (None without clouds)."""
    if spec.clouds <= 0:
        return None
    n60 = spec.size_px // 6
    rng = np.random.default_rng([spec.seed, _SALT, 2])
    field = _smooth(rng, 1, max(n60, 32), sigma=12.0)[0, :n60, :n60]
    edge = np.quantile(field, 1.0 - spec.clouds)
    return np.clip((field - edge) / 0.8 + 0.08, 0.0, 1.0) * (field > edge)


#: Shadow offset of the clouds in 60 m pixels (south-east, sun in the south-west... of a northern summer noon).
_SHADOW = (6, 9)


def _at(field: np.ndarray, y0: int, y1: int, width: int, gsd: int) -> np.ndarray:
    """Rows ``[y0, y1)`` of a 60 m field on the ``gsd`` grid (nearest), ``width`` pixels wide."""
    f = 60 // gsd
    rows = np.arange(y0, y1) // f
    cols = np.arange(width) // f
    return field[np.clip(rows, 0, field.shape[0] - 1)][:, np.clip(cols, 0, field.shape[1] - 1)]


def nodata_mask(spec: SceneSpec, y0: int, y1: int, width: int, gsd: int) -> np.ndarray:
    """The empty corner: pixels whose upper-left corner lies in the north-west triangle of ``nodata_corner``."""
    if spec.nodata_corner <= 0:
        return np.zeros((y1 - y0, width), dtype=bool)
    leg = spec.size_px * 10 * np.sqrt(2.0 * spec.nodata_corner)
    ys = np.arange(y0, y1)[:, None] * gsd
    xs = np.arange(width)[None, :] * gsd
    return (xs + ys) < leg


def apply_atmosphere(
    spec: SceneSpec, clouds: np.ndarray | None, bands: dict[str, np.ndarray], y0: int, gsd: int
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Blend clouds and shadows into one strip of a resolution's bands; returns bands, opacity, shadow."""
    first = next(iter(bands.values()))
    h, w = first.shape
    if clouds is None:
        zero = np.zeros((h, w), dtype=np.float32)
        return bands, zero, zero
    alpha = _at(clouds, y0, y0 + h, w, gsd).astype(np.float32)
    sy, sx = _SHADOW
    shifted = np.zeros_like(clouds)
    shifted[sy:, sx:] = clouds[:-sy, :-sx]
    shadow = _at(shifted, y0, y0 + h, w, gsd).astype(np.float32) * (1.0 - alpha)
    out = {}
    for name, arr in bands.items():
        cloud_dn = float(np.interp(contract.band(name).wavelength_nm, _CLOUD_NM, _CLOUD_DN))
        value = arr.astype(np.float32) * (1.0 - alpha) + cloud_dn * alpha
        value *= 1.0 - 0.55 * shadow
        out[name] = np.clip(np.rint(value), 1, 65535).astype(np.uint16)
    return out, alpha, shadow


def scene_classification(bands20: dict[str, np.ndarray], alpha: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """SCL values of a 20 m strip (before the nodata corner): clouds by opacity, shadow, else a spectral rule."""
    nir = bands20["B8A"].astype(np.float32)
    red = bands20["B04"].astype(np.float32)
    ndvi = (nir - red) / np.maximum(nir + red, 1.0)
    scl = np.full(nir.shape, 5, dtype=np.uint8)
    scl[ndvi > 0.35] = 4
    scl[(nir < 900) & (ndvi < 0.1)] = 6
    scl[shadow > 0.3] = 3
    scl[alpha > 0.05] = 10
    scl[alpha > 0.3] = 8
    scl[alpha > 0.6] = 9
    return scl
