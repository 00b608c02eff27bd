"""Synthetic SEN12MS in the layout of the real archives, with scene-classification labels.

Written::

    <season>/s2_<scene>/<season>_s2_<scene>_p<n>.tif   13 bands (contract.SEN12MS_S2_BANDS), uint16, L1C
    <season>/lc_<scene>/<season>_lc_<scene>_p<n>.tif   4 bands uint16: IGBP 1..17, LCCS LC, LCCS LU, LCCS SH
    <season>/s1_<scene>/<season>_s1_<scene>_p<n>.tif   with s1=True: 2 bands float32 dB (VV, VH)
    labels/IGBP_probability_labels.pkl                 {S2 file name: 17 IGBP fractions (float64 array)}
    splits/{train,test}_list.{txt,pkl}                 S2 file names; txt CRLF, pkl protocol 3 list

The IGBP band is coarse, like MODIS at 500 m resampled to 10 m: each ~50 px cell takes the majority kind of
the fine 10 m scene, so labels (the fractions of that band, exactly what the pickle holds) are as blurry as
the real ones. Patches come in scenes; a scene has its own land-cover mix (a Dirichlet draw around global
IGBP frequencies), and whole scenes (about 10%, at least one when there are two or more) form the test list.

TIFF structure of real SEN12MS files is not verified (formats.md 3.1): these are GDAL-default
pixel-interleaved, uncompressed, strips of 8 KiB, WGS 84 / UTM, 10 m pixels.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.synthetic import PatchTruth, scene
from landzoo.synthetic.common import allocate, check_known, kind_map, layout, makedirs, write_bytes, write_crlf
from landzoo.synthetic.signatures import CLASS_KINDS, KINDS

__all__ = ["OUTPUTS", "SEASONS", "finish", "make", "plan"]

SEASONS = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
OUTPUTS = (*SEASONS, "labels", "splits")
LABELS_FILE = "IGBP_probability_labels.pkl"
#: Approximate global shares of IGBP classes among SEN12MS patches (croplands, grass, savannas dominate).
IGBP_PRIOR = (6, 4, 1, 6, 7, 3, 6, 10, 9, 13, 2, 14, 6, 7, 0.5, 4, 5)
PHENOLOGY = {"spring": 0.95, "summer": 1.05, "fall": 0.88, "winter": 0.75}
#: IGBP class (1..17) -> (LCCS land cover, LCCS land use, LCCS surface hydrology) codes for LC bands 2..4.
LCCS = {
    1: (11, 10, 10), 2: (12, 10, 10), 3: (13, 10, 10), 4: (14, 10, 10), 5: (15, 10, 10), 6: (41, 40, 40),
    7: (43, 40, 40), 8: (21, 20, 20), 9: (22, 30, 30), 10: (31, 30, 30), 11: (31, 30, 50), 12: (31, 36, 30),
    13: (31, 9, 30), 14: (31, 25, 30), 15: (2, 2, 2), 16: (1, 1, 1), 17: (3, 3, 3),
}  # fmt: skip
MIN_FRAC = 0.01
PATCHES_PER_SCENE = 25
TEST_SCENE_SHARE = 0.1


@dataclass(frozen=True)
class Job:
    index: int
    season: str
    scene_id: int
    patch: int
    split: str
    scene_mix: tuple[float, ...]  # the scene's IGBP class weights
    zone: int
    corner: tuple[int, int]

    @property
    def s2_name(self) -> str:
        return f"{self.season}_s2_{self.scene_id}_p{self.patch}.tif"


def check_options(patches: int, options: dict[str, Any]) -> dict[str, Any]:
    from landzoo.synthetic import GenerateError

    check_known(options, ("s1", "patch_px"), "sen12ms")
    px = options.get("patch_px", 256)
    if isinstance(px, bool) or not isinstance(px, int) or not 8 <= px <= 1024:
        raise GenerateError(f"patch_px must be an integer from 8 to 1024, not {px!r}")
    return {"s1": bool(options.get("s1", False)), "patch_px": px}


def plan(rng: np.random.Generator, patches: int, options: dict[str, Any]) -> list[Job]:
    n_scenes = max(1, math.ceil(patches / PATCHES_PER_SCENE))
    n_scenes = min(n_scenes, patches)
    n_test = max(1, round(TEST_SCENE_SHARE * n_scenes)) if n_scenes >= 2 else 0
    seasons = [SEASONS[i % 4] for i in rng.permutation(n_scenes)]
    ids: dict[str, list[int]] = {}
    scenes = []
    for s in seasons:  # scene numbers are distinct within a season (real ones run 1..~150)
        taken = ids.setdefault(s, [])
        free = [i for i in range(1, 151 + len(taken)) if i not in taken]
        number = int(free[rng.integers(len(free))])
        taken.append(number)
        scenes.append((s, number))
    test = set(rng.choice(n_scenes, size=n_test, replace=False).tolist()) if n_test else set()
    counts = allocate(patches, rng.uniform(0.5, 1.5, size=n_scenes))
    prior = np.asarray(IGBP_PRIOR, dtype=np.float64)
    rows = []
    px = options["patch_px"]
    for i, ((season, number), count) in enumerate(zip(scenes, counts, strict=True)):
        mix = tuple(rng.dirichlet(prior / prior.sum() * 6.0 + 0.02).round(6).tolist())
        zone = int(rng.integers(1, 61))
        x0, y0 = int(rng.integers(200, 800)) * 1000, int(rng.integers(500, 8000)) * 1000
        numbers = np.sort(rng.choice(max(count * 2, 40), size=count, replace=False))
        for p in numbers:
            corner = (x0 + int(p % 20) * px * 10, y0 - int(p // 20) * px * 10)
            rows.append((season, number, int(p), "test" if i in test else "train", mix, zone, corner))
    rows.sort(key=lambda r: (SEASONS.index(r[0]), r[1], r[2]))
    return [Job(i, *r) for i, r in enumerate(rows)]


def _tif_layout(px: int, samples: int, dtype: str, zone: int) -> Any:
    return layout(width=px, height=px, dtype=dtype, zone=zone, pixel_size=(10.0, 10.0), samples=samples)


def make(
    job: Job, rng: np.random.Generator, bank: scene.Bank, options: dict[str, Any], root: Path, keep_arrays: bool
) -> PatchTruth:
    px = options["patch_px"]
    k = int(rng.choice((1, 2, 3, 4), p=(0.3, 0.35, 0.25, 0.1)))
    mix = np.asarray(job.scene_mix)
    idx = rng.choice(len(contract.IGBP17), size=k, replace=False, p=mix / mix.sum())
    classes = [contract.IGBP17[i] for i in idx]
    kinds = [CLASS_KINDS["igbp17"][c] for c in classes]
    assert not any(KINDS[kd].linear for kd in kinds)
    weights = rng.dirichlet(np.full(k, 1.2))
    phenology = PHENOLOGY[job.season.split("_")[1]] * (1.0 + 0.05 * rng.standard_normal())
    sc = scene.draw_scene(
        rng,
        bank,
        kinds,
        weights,
        px,
        contract.SEN12MS_S2_BANDS,
        min_frac=MIN_FRAC,
        seg_scale=px / 4.0,
        phenology=phenology,
    )
    bands = scene.sensor_bands(rng, sc, "L1C", native=False)
    s2 = np.stack([bands[b] for b in contract.SEN12MS_S2_BANDS], axis=-1)
    igbp_codes = np.array([contract.IGBP17.index(c) + 1 for c in classes], dtype=np.uint16)
    coarse = scene.majority_blocks(sc.seg, max(2, round(50 * px / 256)), len(classes))
    igbp = igbp_codes[coarse]
    lccs = np.array([LCCS[int(c)] for c in igbp_codes], dtype=np.uint16)[coarse]  # (px, px, 3)
    lc = np.concatenate([igbp[..., None], lccs], axis=-1)
    fractions = np.bincount(igbp.ravel(), minlength=len(contract.IGBP17) + 1)[1:] / igbp.size

    stem = f"{job.season}_{{}}_{job.scene_id}_p{job.patch}.tif"
    for sensor, arr, dtype in (("s2", s2, "uint16"), ("lc", lc, "uint16")):
        folder = root / job.season / f"{sensor}_{job.scene_id}"
        makedirs(folder)
        lay = _tif_layout(px, arr.shape[-1], dtype, job.zone)
        write_bytes(folder / stem.format(sensor), lay.encode(arr, *job.corner))
    arrays = (
        {**bands, "IGBP": igbp, "LCCS_LC": lccs[..., 0], "LCCS_LU": lccs[..., 1], "LCCS_SH": lccs[..., 2]}
        if keep_arrays
        else None
    )
    if options["s1"]:
        s1 = scene.sensor_s1(rng, sc)
        folder = root / job.season / f"s1_{job.scene_id}"
        makedirs(folder)
        arr = np.stack([s1[b] for b in contract.S1_BANDS], axis=-1)
        write_bytes(folder / stem.format("s1"), _tif_layout(px, 2, "float32", job.zone).encode(arr, *job.corner))
        if arrays is not None:
            arrays.update(s1)
    labels = tuple(c for c, f in zip(contract.IGBP17, fractions, strict=True) if f > 0)
    meta = {
        "igbp_fractions": fractions,
        "scene": f"{job.season}/s2_{job.scene_id}",
        "kinds": dict(zip(classes, kinds, strict=True)),
    }
    if keep_arrays:
        meta.update(kind_map(sc))
    return PatchTruth(job.s2_name[: -len(".tif")], job.split, labels, meta, arrays)


def finish(root: Path, jobs: list[Job], truths: list[PatchTruth], options: dict[str, Any]) -> Path:
    labels = {
        j.s2_name: np.asarray(t.meta["igbp_fractions"], dtype=np.float64) for j, t in zip(jobs, truths, strict=True)
    }
    makedirs(root / "labels")
    write_bytes(root / "labels" / LABELS_FILE, pickle.dumps(labels, protocol=3))
    for split in ("train", "test"):
        names = [j.s2_name for j in jobs if j.split == split]
        write_crlf(root / "splits" / f"{split}_list.txt", names)
        write_bytes(root / "splits" / f"{split}_list.pkl", pickle.dumps(names, protocol=3))
    return root
