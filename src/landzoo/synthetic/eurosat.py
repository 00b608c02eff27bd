"""Synthetic EuroSAT (multispectral) in the layout and TIFF structure of Zenodo's ``EuroSAT_MS.zip``.

``EuroSAT_MS/<Class>/<Class>_<n>.tif``, n from 1 and not zero-padded; one 13-band uint16 64x64 GeoTIFF per
image in :data:`landzoo.contract.EUROSAT_BANDS` order (B8A last), pixel-interleaved, uncompressed, 4 rows per
strip, ExtraSamples, the GDAL_METADATA tag rasterio wrote, WGS 84 / UTM with a pixel size of about but not
exactly 10 m (the real files are byte-reproduced by :class:`landzoo.synthetic.tiff.TiffLayout`, see tests).

Classes get images in proportion to the commonly quoted EuroSAT counts (3000/3000/3000/2500/2500/2000/2500/
3000/2500/3000). An image of a class is its recipe (:data:`landzoo.synthetic.signatures.EUROSAT_RECIPES`):
a main kind covering most of it (or a river / road strip) over background kinds, so classes overlap in
content as real EuroSAT images do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.synthetic import PatchTruth, scene
from landzoo.synthetic.common import allocate, check_known, kind_map, layout, makedirs, write_bytes
from landzoo.synthetic.signatures import EUROSAT_RECIPES, KINDS

__all__ = ["CLASS_COUNTS", "OUTPUTS", "finish", "make", "plan"]

FOLDER = "EuroSAT_MS"
OUTPUTS = (FOLDER,)
PX = 64
CLASS_COUNTS = dict(
    zip(contract.EUROSAT_CLASSES, (3000, 3000, 3000, 2500, 2500, 2000, 2500, 3000, 2500, 3000), strict=True)
)
#: The GDAL_METADATA tag of the real files (rasterio creation options), trailing newline included.
GDAL_METADATA = (
    "<GDALMetadata>\n"
    '  <Item name="interleave" domain="rio_creation_kwds">pixel</Item>\n'
    '  <Item name="tiled" domain="rio_creation_kwds">False</Item>\n'
    "</GDALMetadata>\n"
)
MIN_FRAC = 0.02


@dataclass(frozen=True)
class Job:
    index: int
    cls: str
    n: int
    zone: int
    pixel_size: tuple[float, float]
    corner: tuple[float, float]

    @property
    def id(self) -> str:
        return f"{self.cls}_{self.n}"


def check_options(patches: int, options: dict[str, Any]) -> dict[str, Any]:
    check_known(options, (), "eurosat")
    return {}


def plan(rng: np.random.Generator, patches: int, options: dict[str, Any]) -> list[Job]:
    counts = allocate(patches, list(CLASS_COUNTS.values()))
    jobs = []
    for cls, count in zip(CLASS_COUNTS, counts, strict=True):
        for n in range(1, count + 1):
            zone = int(rng.integers(29, 36))
            size = (10.0 + float(rng.uniform(-0.03, 0.03)), 10.0 + float(rng.uniform(-0.03, 0.03)))
            corner = (float(rng.uniform(250_000, 750_000)), float(rng.uniform(4_000_000, 7_500_000)))
            jobs.append(Job(len(jobs), cls, n, zone, size, corner))
    return jobs


def compose(rng: np.random.Generator, cls: str) -> tuple[list[str], np.ndarray]:
    """Kinds of one image of ``cls`` and their relative areas (main kind first)."""
    recipe = EUROSAT_RECIPES[cls]
    main = recipe.main[int(rng.integers(len(recipe.main)))]
    n_bg = int(rng.integers(1, 3))
    bg = [
        recipe.background[i]
        for i in rng.choice(len(recipe.background), size=min(n_bg, len(recipe.background)), replace=False)
    ]
    bg = [b for b in bg if b != main]
    if KINDS[main].linear:
        return [main, *bg], np.array([1.0, *rng.dirichlet(np.ones(len(bg)))])
    cover = rng.uniform(*recipe.cover)
    rest = rng.dirichlet(np.ones(len(bg))) * (1 - cover) if bg else np.zeros(0)
    return [main, *bg], np.array([cover, *rest])


def make(
    job: Job, rng: np.random.Generator, bank: scene.Bank, options: dict[str, Any], root: Path, keep_arrays: bool
) -> PatchTruth:
    phenology = float(rng.uniform(0.75, 1.1))
    for _ in range(20):  # the class's main kind must be in the image (a strip can miss it; redraw, seeded)
        kinds, weights = compose(rng, job.cls)
        sc = scene.draw_scene(
            rng, bank, kinds, weights, PX, contract.EUROSAT_BANDS, min_frac=MIN_FRAC, seg_scale=PX / 3.0,
            phenology=phenology,
        )  # fmt: skip
        if sc.fractions[0] > 0:
            break
    bands = scene.sensor_bands(rng, sc, "L1C", native=False)
    image = np.stack([bands[b] for b in contract.EUROSAT_BANDS], axis=-1)
    folder = root / FOLDER / job.cls
    makedirs(folder)
    lay = layout(
        width=PX, height=PX, dtype="uint16", zone=job.zone, pixel_size=job.pixel_size, samples=len(contract.EUROSAT_BANDS),
        gdal_metadata=GDAL_METADATA,
    )  # fmt: skip
    write_bytes(folder / f"{job.id}.tif", lay.encode(image, *job.corner))
    meta = {"kinds": {k: float(f) for k, f in zip(kinds, sc.fractions, strict=True)}}
    if keep_arrays:
        meta.update(kind_map(sc))
    return PatchTruth(job.id, None, (job.cls,), meta, dict(bands) if keep_arrays else None)


def finish(root: Path, jobs: list[Job], truths: list[PatchTruth], options: dict[str, Any]) -> Path:
    return root
