"""Pixels of one synthetic patch: a smooth random segmentation into land-cover kinds, textured and mixed.

The recipe, vectorised over the patch (a BigEarthNet patch takes a few milliseconds):

1. Segmentation: ``k`` smooth random fields (windows of precomputed FFT low-pass noise, see :class:`Bank`),
   biased by the wanted area weights; each pixel takes the kind of the largest field. Slivers under ``min_frac`` of the patch are merged away, so a
   kind is present iff it covers at least ``min_frac`` (labels follow the mix). Linear kinds (rivers, roads)
   are then drawn as meandering strips over it.
2. Texture: per kind a field ``t`` in [-1, 1] of its pattern (smooth, blobby, fine, blocks, field parcels,
   rows, dots; a random window of a banked tile) varies the mix of its two materials and its brightness.
3. Spectra: the materials' curves at the requested bands, with per-patch jitter per kind (brightness,
   spectral tilt, vegetation phenology) so a class is a distribution, not one vector.
4. Sensor: the 10 m field is area-averaged to each band's resolution (what a 20/60 m detector sees), then
   illumination gain, atmosphere (L1C or L2A), noise, and rounding to uint16 DNs in 1..65535.

Everything is drawn from the ``numpy.random.Generator`` passed in, in a fixed order, and from the bank
(a function of the dataset seed only), so a patch is a pure function of its seed.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from landzoo import contract
from landzoo.synthetic import signatures as sig

__all__ = ["Bank", "Scene", "area_average", "box_blur", "draw_scene", "majority_blocks", "sensor_bands", "sensor_s1"]

_EPS = 1e-6


# --------------------------------------------------------------------------------------------------
# Random fields
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _lowpass(px: int, sigma: float) -> np.ndarray:
    """Gaussian low-pass transfer function (rfft2 layout) of std ``sigma`` pixels for a px x px field."""
    fy = np.fft.fftfreq(px)[:, None]
    fx = np.fft.rfftfreq(px)[None, :]
    return np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2)).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, n: int, px: int, sigma: float) -> np.ndarray:
    """``n`` periodic Gaussian random fields of correlation length ``sigma`` px, each zero-mean, unit-std."""
    white = rng.standard_normal((n, px, px), dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(white) * _lowpass(px, max(sigma, 0.3)), s=(px, px)).astype(np.float32)
    field -= field.mean(axis=(1, 2), keepdims=True)
    field /= field.std(axis=(1, 2), keepdims=True) + _EPS
    return field


def _grid(px: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:px, 0:px].astype(np.float32)
    return yy, xx


def texture(rng: np.random.Generator, pattern: str, scale: float, px: int) -> np.ndarray:
    """A texture field in [-1, 1] (float32 [px, px]) of ``pattern`` at spatial ``scale`` pixels."""
    if pattern == "smooth":
        return np.tanh(_smooth_noise(rng, 1, px, scale)[0] * 0.8)
    if pattern == "blobby":
        return np.tanh(_smooth_noise(rng, 1, px, scale * 0.6)[0] * 1.5)
    if pattern == "fine":
        return np.clip(_smooth_noise(rng, 1, px, scale * 0.4)[0] * 0.6, -1, 1)
    if pattern == "blocks":
        cell = max(1, round(scale))
        n = px // cell + 2
        values = rng.uniform(-1, 1, size=(n, n)).astype(np.float32)
        oy, ox = rng.integers(0, cell, size=2)
        idx = (np.arange(px) + oy) // cell, (np.arange(px) + ox) // cell
        fine = _smooth_noise(rng, 1, px, 0.5)[0]
        return np.clip(values[idx[0][:, None], idx[1][None, :]] + 0.25 * fine, -1, 1)
    if pattern == "parcels":
        return _parcels(rng, scale, px)
    if pattern == "rows":
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        yy, xx = _grid(px)
        wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / max(scale, 2.0) + phase)
        return np.tanh(2.5 * wave + 0.5 * _smooth_noise(rng, 1, px, 1.0)[0])
    if pattern == "dots":
        n = _smooth_noise(rng, 1, px, scale * 0.5)[0]
        return np.tanh(4.0 * (n - 0.4))
    raise ValueError(f"unknown texture pattern {pattern!r}")


def _parcels(rng: np.random.Generator, scale: float, px: int) -> np.ndarray:
    """Field parcels: a jittered-grid Voronoi tessellation, each parcel its own level and tillage stripes."""
    cell = max(4.0, scale)
    n = int(np.ceil(px / cell)) + 2
    u = rng.uniform(0, 1, size=(n, n, 2))
    grid = np.arange(n) - 1
    seeds = np.empty((n, n, 2), dtype=np.float32)  # one seed per cell (row, col) -> (y, x), with a border ring
    seeds[..., 0] = (grid[:, None] + u[..., 0]) * cell
    seeds[..., 1] = (grid[None, :] + u[..., 1]) * cell
    level = rng.uniform(-1, 1, size=(n, n)).astype(np.float32)
    angle = rng.uniform(0, np.pi, size=(n, n)).astype(np.float32)
    yy, xx = _grid(px)
    cy, cx = (yy // cell).astype(np.int64) + 1, (xx // cell).astype(np.int64) + 1
    best = np.full((px, px), np.inf, dtype=np.float32)
    owner_y = np.zeros((px, px), dtype=np.int64)
    owner_x = np.zeros((px, px), dtype=np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            sy, sx = np.clip(cy + dy, 0, n - 1), np.clip(cx + dx, 0, n - 1)
            d = (seeds[sy, sx, 0] - yy) ** 2 + (seeds[sy, sx, 1] - xx) ** 2
            closer = d < best
            best = np.where(closer, d, best)
            owner_y = np.where(closer, sy, owner_y)
            owner_x = np.where(closer, sx, owner_x)
    a = angle[owner_y, owner_x]
    stripes = np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / 3.0)
    return np.clip(level[owner_y, owner_x] + 0.2 * stripes, -1, 1)


def _strip(rng: np.random.Generator, px: int, width: float) -> np.ndarray:
    """A meandering strip (river, road) of ``width`` px across the patch, as a boolean mask."""
    theta = rng.uniform(0, np.pi)
    offset = rng.uniform(-0.25, 0.25) * px
    amp, period, phase = rng.uniform(0, 0.08) * px, rng.uniform(0.6, 1.5) * px, rng.uniform(0, 2 * np.pi)
    yy, xx = _grid(px)
    c = (px - 1) / 2
    along = (xx - c) * np.cos(theta) + (yy - c) * np.sin(theta)
    across = -(xx - c) * np.sin(theta) + (yy - c) * np.cos(theta)
    return np.abs(across - offset - amp * np.sin(2 * np.pi * along / period + phase)) < width / 2


class Bank:
    """Precomputed random fields, cropped at random: per-patch textures cost a copy, not an FFT.

    Tiles are ``px * 3/2`` on a side; a patch takes a px window at a random offset in one of the 8
    orientations (transposes and flips). Tiles are drawn from ``seed`` and the tile key alone, so they are
    the same in every worker process whatever order patches come in (determinism does not depend on
    ``--workers``).
    """

    TILES = 6

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._tiles: dict[tuple, np.ndarray] = {}

    def _stack(self, key: tuple, make: Callable[[np.random.Generator, int], np.ndarray], px: int) -> np.ndarray:
        tiles = self._tiles.get(key)
        if tiles is None:
            side = px + px // 2
            rng = np.random.default_rng([self.seed, zlib.crc32(repr(key).encode())])
            tiles = np.stack([make(rng, side) for _ in range(self.TILES)]).astype(np.float32)
            self._tiles[key] = tiles
        return tiles

    @staticmethod
    def _crop(rng: np.random.Generator, tiles: np.ndarray, px: int) -> np.ndarray:
        i = rng.integers(len(tiles))
        oy, ox = rng.integers(0, tiles.shape[1] - px + 1, size=2)
        turn = rng.integers(8)
        t = tiles[i, oy : oy + px, ox : ox + px]
        if turn & 1:
            t = t.T
        if turn & 2:
            t = t[::-1]
        if turn & 4:
            t = t[:, ::-1]
        return t

    def texture(self, rng: np.random.Generator, kind: str, px: int) -> np.ndarray:
        """A px x px window of the texture of ``kind`` (float32 in [-1, 1], read-only view)."""
        spec = sig.KINDS[kind]
        tiles = self._stack(
            ("tex", spec.pattern, spec.scale, px), lambda r, n: texture(r, spec.pattern, spec.scale, n), px
        )
        return self._crop(rng, tiles, px)

    def smooth(self, rng: np.random.Generator, n: int, px: int, scale: float) -> np.ndarray:
        """``n`` px x px windows of unit-std smooth noise of correlation length ``scale`` (float32 [n, px, px])."""
        tiles = self._stack(("seg", round(scale, 3), px), lambda r, m: _smooth_noise(r, 1, m, scale)[0], px)
        return np.stack([self._crop(rng, tiles, px) for _ in range(n)])


# --------------------------------------------------------------------------------------------------
# Scene: segmentation + texture + spectra at 10 m
# --------------------------------------------------------------------------------------------------


@dataclass
class Scene:
    """One drawn patch at 10 m before the sensor: which kind is where, and the surface reflectance.

    ``kinds`` lists the kinds asked for; ``seg`` indexes it per pixel; ``fractions`` is each kind's area
    share (0 for a kind merged away). ``reflectance`` is float32 [C, px, px] for ``bands``.
    """

    kinds: tuple[str, ...]
    seg: np.ndarray
    fractions: np.ndarray
    bands: tuple[str, ...]
    reflectance: np.ndarray
    frac_a: np.ndarray
    texture: np.ndarray

    def present(self) -> list[str]:
        """Kinds that cover at least one pixel (each then covers at least ``min_frac``), in ``kinds`` order."""
        return [k for k, f in zip(self.kinds, self.fractions, strict=True) if f > 0]


def segment(
    rng: np.random.Generator,
    bank: Bank,
    weights: Sequence[float],
    px: int,
    scale: float,
    min_frac: float,
    taken: np.ndarray | None = None,
) -> np.ndarray:
    """Kind index per pixel (int64 [px, px]) for area kinds with relative areas ``weights``; no slivers.

    Pixels in ``taken`` (a boolean mask, e.g. under a river) do not count towards a kind's area.
    """
    k = len(weights)
    if k == 1:
        return np.zeros((px, px), dtype=np.int64)
    fields = bank.smooth(rng, k, px, scale)
    bias = 1.2 * np.log(np.asarray(weights, dtype=np.float32) / np.sum(weights) + _EPS)
    score = fields + bias[:, None, None]
    seg = np.argmax(score, axis=0)
    free = None if taken is None else ~taken
    for _ in range(k):  # merge slivers into their next-best kind, smallest first, until none is left
        counts = np.bincount(seg[free] if free is not None else seg.ravel(), minlength=k) / seg.size
        small = [i for i in np.argsort(counts) if 0 < counts[i] < min_frac]
        if not small or len(small) == k:
            break
        score[small[0]] = -np.inf
        seg = np.argmax(score, axis=0)
    return seg


def draw_scene(
    rng: np.random.Generator,
    bank: Bank,
    kinds: Sequence[str],
    weights: Sequence[float],
    px: int,
    bands: Sequence[str],
    *,
    min_frac: float = 0.02,
    seg_scale: float | None = None,
    phenology: float = 1.0,
) -> Scene:
    """Draw the surface of one patch: segmentation of ``kinds`` (linear kinds as strips) and reflectance.

    ``weights`` are relative areas of the area kinds (linear kinds ignore theirs); ``phenology`` scales the
    vegetation red edge/NIR (winter < 1 < peak summer).
    """
    kinds = tuple(kinds)
    bands = tuple(bands)
    if not kinds:
        raise ValueError("a scene needs at least one kind")
    is_linear = np.array([sig.KINDS[k].linear for k in kinds])
    area_idx = np.flatnonzero(~is_linear)
    if area_idx.size == 0:
        raise ValueError("a scene needs at least one area (non-linear) kind")
    w = np.asarray(weights, dtype=np.float64)
    strips: dict[int, np.ndarray] = {}
    taken = np.zeros((px, px), dtype=bool)
    for i in np.flatnonzero(is_linear):  # strips first, so area kinds are measured on what they keep
        spec = sig.KINDS[kinds[i]]
        mask = _strip(rng, px, max(spec.width, 1.5 * min_frac * px + 1.0)) & ~taken
        if mask.mean() >= min_frac:
            strips[int(i)] = mask
            taken |= mask
    local = segment(rng, bank, w[area_idx], px, seg_scale or px / 5.0, min_frac, taken if strips else None)
    seg = area_idx[local]
    for i, mask in strips.items():
        seg = np.where(mask, i, seg)
    fractions = np.bincount(seg.ravel(), minlength=len(kinds)) / seg.size

    # Texture per kind, then per pixel.
    onehot = (seg[None] == np.arange(len(kinds))[:, None, None]).astype(np.float32)  # (k, px, px)
    t = np.zeros((px, px), dtype=np.float32)
    for i, kind in enumerate(kinds):
        if fractions[i] > 0:
            t += onehot[i] * bank.texture(rng, kind, px)
    frac0 = np.array([sig.KINDS[k].frac for k in kinds], dtype=np.float32)
    contrast = np.array([sig.KINDS[k].contrast for k in kinds], dtype=np.float32)
    bright = np.array([sig.KINDS[k].bright for k in kinds], dtype=np.float32)
    frac_a = np.clip(frac0[seg] + contrast[seg] * t, 0.0, 1.0)
    gain = 1.0 + bright[seg] * t

    # Spectra per kind with per-patch jitter, mixed per pixel: (B + frac_a (A - B)) * gain, as two matmuls.
    a_curves, b_curves = _jittered_curves(rng, kinds, bands, phenology)
    flat = onehot.reshape(len(kinds), -1)
    refl = b_curves.T @ flat + (a_curves - b_curves).T @ (flat * frac_a.reshape(1, -1))
    refl *= gain.reshape(1, -1)
    return Scene(kinds, seg, fractions, bands, refl.reshape(len(bands), px, px), frac_a, t)


@functools.lru_cache(maxsize=64)
def _veg_weight(bands: tuple[str, ...]) -> np.ndarray:
    """How much phenology acts on each band: 0 in the visible, 1 across red edge/NIR, 0.5 in the SWIR."""
    nm = np.array([contract.band(b).wavelength_nm for b in bands])
    return np.where(nm < 1300, np.clip((nm - 690.0) / 60.0, 0.0, 1.0), 0.5)


@functools.lru_cache(maxsize=64)
def _ndvi(material: str) -> float:
    curve = sig.MATERIALS[material][0]
    red, nir = curve[sig.ANCHOR_NM.index(665)], curve[sig.ANCHOR_NM.index(842)]
    return max(0.0, (nir - red) / (nir + red))


def _jittered_curves(
    rng: np.random.Generator, kinds: tuple[str, ...], bands: tuple[str, ...], phenology: float
) -> tuple[np.ndarray, np.ndarray]:
    nm = np.array([contract.band(b).wavelength_nm for b in bands])
    veg_w = _veg_weight(bands)
    a_out, b_out = [], []
    for kind in kinds:
        a, b = sig.kind_signature(kind, bands)
        level = 1.0 + 0.06 * rng.standard_normal()
        tilt = 1.0 + 0.04 * rng.standard_normal() * (nm - 1000.0) / 1000.0
        curves = []
        for mat, curve in ((sig.KINDS[kind].a, a), (sig.KINDS[kind].b, b)):
            pheno = 1.0 + (phenology - 1.0) * veg_w * _ndvi(mat) * 1.5
            curves.append(curve * level * tilt * pheno)
        a_out.append(curves[0])
        b_out.append(curves[1])
    return np.asarray(a_out, dtype=np.float32), np.asarray(b_out, dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# Sensor: resolution, atmosphere, noise, quantisation
# --------------------------------------------------------------------------------------------------


def area_average(field: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of the last two axes (sides must divide)."""
    if factor == 1:
        return field
    # Strided adds beat a reshape-mean over non-contiguous axes by ~15x at these sizes.
    cols = field[..., 0::factor]
    for j in range(1, factor):
        cols = cols + field[..., j::factor]
    out = cols[..., 0::factor, :]
    for i in range(1, factor):
        out = out + cols[..., i::factor, :]
    return out * np.float32(1.0 / (factor * factor))


def box_blur(field: np.ndarray, size: int) -> np.ndarray:
    """Centred ``size`` x ``size`` moving average of the last two axes (edges repeat): a coarse band on a 10 m grid."""
    if size <= 1:
        return field
    lo, hi = (size - 1) // 2, size // 2
    h, w = field.shape[-2:]
    pad = [(0, 0)] * (field.ndim - 2) + [(lo, hi), (lo, hi)]
    padded = np.pad(field.astype(np.float32, copy=False), pad, mode="edge")
    rows = padded[..., :, 0:w].copy()  # separable: shifted adds along x, then along y
    for j in range(1, size):
        rows += padded[..., :, j : j + w]
    out = rows[..., 0:h, :].copy()
    for i in range(1, size):
        out += rows[..., i : i + h, :]
    out *= np.float32(1.0 / (size * size))
    return out


def sensor_bands(
    rng: np.random.Generator,
    scene: Scene,
    level: str,
    *,
    native: bool,
) -> dict[str, np.ndarray]:
    """Band name -> uint16 DN image as the sensor product stores it.

    ``native=True`` (BigEarthNet): each band at its own resolution (120/60/20 px for a 120 px scene), area
    averages of the 10 m field. ``native=False`` (SEN12MS, EuroSAT): all bands on the 10 m grid, coarse bands
    blurred by their pixel size (resampled products look like this).
    """
    transmit, offset = sig.atmosphere(scene.bands, level)
    gain = rng.uniform(0.9, 1.1)
    haze = rng.uniform(0.6, 1.4) if level == "L1C" else rng.uniform(0.0, 2.0)
    factors = np.array([contract.band(b).gsd_m // 10 for b in scene.bands])
    out: dict[str, np.ndarray] = {}
    for factor in sorted(set(factors.tolist())):  # one vectorised pass per resolution group
        idx = np.flatnonzero(factors == factor)
        group = scene.reflectance[idx]
        group = area_average(group, factor) if native else box_blur(group, factor)
        value = group * (gain * transmit[idx, None, None]).astype(np.float32)
        value += (haze * offset[idx, None, None]).astype(np.float32)
        sigma = value * np.float32(0.008)
        sigma += np.float32(6.0)
        noise = rng.standard_normal(group.shape, dtype=np.float32)
        noise *= sigma
        value += noise
        np.rint(value, out=value)
        np.clip(value, 1, 65535, out=value)
        dn = value.astype(np.uint16)
        for j, i in enumerate(idx):
            out[scene.bands[i]] = dn[j]
    return {b: out[b] for b in scene.bands}


def sensor_s1(rng: np.random.Generator, scene: Scene, looks: float = 5.0) -> dict[str, np.ndarray]:
    """VV and VH backscatter in dB (float32 [px, px]) with multiplicative speckle of ``looks`` looks."""
    px = scene.seg.shape[0]
    mats = [sig.kind_s1(k) for k in scene.kinds]
    a_db = np.array([m[0] for m in mats], dtype=np.float32)[scene.seg]  # (px, px, 2)
    b_db = np.array([m[1] for m in mats], dtype=np.float32)[scene.seg]
    lin = scene.frac_a[..., None] * 10 ** (a_db / 10) + (1 - scene.frac_a[..., None]) * 10 ** (b_db / 10)
    lin = lin * (1.0 + 0.3 * scene.texture[..., None]) * 10 ** (rng.uniform(-1.5, 1.5) / 10)
    speckle = rng.gamma(looks, 1.0 / looks, size=(px, px, 2)).astype(np.float32)
    db = np.clip(10 * np.log10(lin * speckle + 1e-6), -50.0, 20.0).astype(np.float32)
    return {"VV": np.ascontiguousarray(db[..., 0]), "VH": np.ascontiguousarray(db[..., 1])}


def majority_blocks(seg: np.ndarray, block: int, n_kinds: int) -> np.ndarray:
    """Each ~``block`` px cell takes its most frequent kind: a coarse map (like MODIS IGBP at 500 m on 10 m)."""
    px = seg.shape[0]
    cells = max(1, round(px / block))
    edges = np.linspace(0, px, cells + 1).round().astype(int)
    out = np.empty_like(seg)
    for i in range(cells):
        for j in range(cells):
            cell = seg[edges[i] : edges[i + 1], edges[j] : edges[j + 1]]
            out[edges[i] : edges[i + 1], edges[j] : edges[j + 1]] = np.bincount(
                cell.ravel(), minlength=n_kinds
            ).argmax()
    return out
