"""Synthetic BigEarthNet v2.0 ("reBEN") in the exact layout and formats of the real archives.

Each patch starts from a REAL v1 name (drawn from the official lists, like v1), so ``s2v1_name``, ``s1_name``
and ``country`` are the official ones; its v2 id carries the tile (from the S1 pair), the relative orbit
(:func:`landzoo.synthetic.geo.relative_orbit`, exact on all real ids) and zero-padded col/row, e.g.
``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_26_57``. The v1 time's leading zero is restored (real v2 ids
differ from v1 by a few seconds too; that is not reproducible and not needed).

Written: ``BigEarthNet-S2/<tile>/<id>/<id>_<band>.tif`` (uint16, native sizes, GDAL_NODATA=0, values >= 1),
``Reference_Maps/<tile>/<id>/<id>_reference_map.tif`` (CLC codes, DEFLATE + predictor 2, nodata 0),
optionally ``BigEarthNet-S1/<scene>/<s1_name>/..._{VV,VH}.tif``, and ``metadata.parquet`` with the 8 real
columns in order and types, sorted by patch_id (labels: 19-class names sorted alphabetically; split
``train``/``validation``/``test`` in the real proportions). ``flagged`` extra patches drawn from the official
snow and cloud lists go to ``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` (images written too,
as in the real archive). Labels are exactly the 19-class names of the codes in the reference map; a draw
with 25% or more unlabelled area (which the real pipeline drops) or no label is redrawn, seeded.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.synthetic import PatchTruth, scene
from landzoo.synthetic import bigearthnet_v1 as v1mod
from landzoo.synthetic.common import allocate, check_known, kind_map, layout, makedirs, write_bytes

__all__ = ["OUTPUTS", "finish", "make", "plan", "v2_patch_id"]

S2_FOLDER = "BigEarthNet-S2"
S1_FOLDER = "BigEarthNet-S1"
MAPS_FOLDER = "Reference_Maps"
METADATA = "metadata.parquet"
FLAGGED_METADATA = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"
OUTPUTS = (S2_FOLDER, S1_FOLDER, MAPS_FOLDER, METADATA, FLAGGED_METADATA)
#: Real v2 split sizes (train / validation / test) of metadata.parquet.
V2_SPLITS = {"train": 237_871, "validation": 122_342, "test": 119_825}
#: Real counts of the flagged file: seasonal snow vs cloud or shadow (never both).
FLAGGED = {"seasonal_snow": 60_773, "cloud_or_shadow": 8_677}
_FLAG_LISTS = {
    "seasonal_snow": "patches_with_seasonal_snow.csv.bz2",
    "cloud_or_shadow": "patches_with_cloud_and_shadow.csv.bz2",
}
_MAX_UNLABELLED = 0.25


def v2_patch_id(v1: v1mod.V1Name) -> str:
    """The v2 patch id of a v1 patch: L2A product (baseline N9999, relative orbit, tile) + padded col/row."""
    from landzoo.synthetic import geo

    stamp = v1.when.strftime("%Y%m%dT%H%M%S")
    orbit = geo.relative_orbit(v1.satellite, v1.when)
    return f"{v1.satellite}_MSIL2A_{stamp}_N9999_R{orbit:03d}_{v1.tile}_{v1.col:02d}_{v1.row:02d}"


@dataclass(frozen=True)
class Job:
    index: int
    v1: v1mod.V1Name
    patch_id: str
    split: str  # train / validation / test, as in the parquet
    flag: str | None  # None, "seasonal_snow" or "cloud_or_shadow"


def check_options(patches: int, options: dict[str, Any]) -> dict[str, Any]:
    from landzoo.synthetic import GenerateError

    check_known(options, ("s1", "flagged"), "bigearthnet-v2")
    v1mod.check_patch_count(patches, "bigearthnet-v2")
    flagged = options.get("flagged", math.ceil(patches / 20))
    if isinstance(flagged, bool) or not isinstance(flagged, int) or flagged < 0:
        raise GenerateError(f"flagged must be a non-negative integer, not {flagged!r}")
    if flagged > sum(FLAGGED.values()):
        raise GenerateError(f"flagged can be at most {sum(FLAGGED.values()):,} (the official snow and cloud lists)")
    return {"s1": bool(options.get("s1", False)), "flagged": flagged}


def plan(rng: np.random.Generator, patches: int, options: dict[str, Any]) -> list[Job]:
    splits = v1mod.official_splits()
    pool = tuple(n for s in v1mod.SPLITS for n in splits[s])
    main = v1mod.draw_names(rng, {"main": pool}, {"main": patches})["main"]
    flag_pools = {f: v1mod.package_list(name) for f, name in _FLAG_LISTS.items()}
    flag_counts = dict(zip(FLAGGED, allocate(options["flagged"], list(FLAGGED.values())), strict=True))
    flagged = v1mod.draw_names(rng, flag_pools, flag_counts)
    info = v1mod.name_info(list(main) + [n for f in flagged for n in flagged[f]])
    names = sorted([(n, None) for n in main] + [(n, f) for f in flagged for n in flagged[f]])
    p = np.array(list(V2_SPLITS.values()), dtype=np.float64)
    split_idx = rng.choice(len(p), size=len(names), p=p / p.sum())
    jobs = []
    for i, ((name, flag), s) in enumerate(zip(names, split_idx, strict=True)):
        parsed = v1mod.parse_v1(name, info[name])
        jobs.append(Job(i, parsed, v2_patch_id(parsed), list(V2_SPLITS)[s], flag))
    return jobs


def _labelled(c: str) -> bool:
    return contract.BEN43_TO_BEN19[c] is not None


def make(
    job: Job, rng: np.random.Generator, bank: scene.Bank, options: dict[str, Any], root: Path, keep_arrays: bool
) -> PatchTruth:
    v1 = job.v1
    phenology = v1mod.PHENOLOGY.get(v1.season, 1.0) * (1.0 + 0.04 * rng.standard_normal())
    for _ in range(v1mod.MAX_DRAWS):  # v2 keeps only patches < 25% unlabelled, with >= 1 label; redraw if not
        classes, weights = v1mod.choose_ben43(rng, landlocked=v1.country in v1mod._LANDLOCKED)
        unl = np.array([not _labelled(c) for c in classes])
        weights = np.where(unl, weights * 0.15, weights)  # unlabelled CLC classes stay small
        sc, bands, present = v1mod.render_ben(rng, bank, classes, weights, phenology)
        unlabelled_area = sum(f for c, f in zip(classes, sc.fractions, strict=True) if not _labelled(c))
        if unlabelled_area < _MAX_UNLABELLED and any(_labelled(c) for c in present):
            break
    codes = np.array([contract.BEN43_CLC_CODES[c] for c in classes], dtype=np.uint16)
    ref = codes[sc.seg]
    labels = sorted({contract.CLC_CODE_TO_BEN19[int(c)] for c in np.unique(ref)} - {None})

    tile = job.patch_id.rsplit("_", 2)[0]
    stem = os.path.join(root, S2_FOLDER, tile, job.patch_id, job.patch_id)
    makedirs(os.path.dirname(stem))
    corner = v1.corner
    for name, arr in bands.items():
        write_bytes(f"{stem}_{name}.tif", v1mod.band_layout(name, v1.zone, v2=True).encode(arr, *corner))
    map_folder = root / MAPS_FOLDER / tile / job.patch_id
    makedirs(map_folder)
    ref_layout = layout(
        width=v1mod.PX, height=v1mod.PX, dtype="uint16", zone=v1.zone, pixel_size=(10.0, 10.0),
        compression="deflate", predictor=True, nodata="0",
    )  # fmt: skip
    write_bytes(map_folder / f"{job.patch_id}_reference_map.tif", ref_layout.encode(ref, *corner))
    arrays = dict(bands, reference_map=ref) if keep_arrays else None
    if options["s1"]:
        s1 = scene.sensor_s1(rng, sc)
        s1_scene = "_".join(v1.s1_name.split("_")[:-3])
        v1mod.write_s1(root / S1_FOLDER / s1_scene / v1.s1_name, v1.s1_name, s1, v1.zone, corner)
        if arrays is not None:
            arrays.update(s1)
    meta = {
        "country": v1.country,
        "s1_name": v1.s1_name,
        "s2v1_name": v1.name,
        "flag": job.flag,
        "ben43_present": present,
        "tile": tile,
    }
    if keep_arrays:
        meta.update(kind_map(sc))
    return PatchTruth(job.patch_id, job.split, tuple(labels), meta, arrays)


def _table(rows: list[tuple[Job, PatchTruth]]) -> Any:
    import pyarrow as pa

    rows = sorted(rows, key=lambda r: r[0].patch_id)
    schema = pa.schema(
        [
            ("patch_id", pa.string()),
            ("labels", pa.list_(pa.field("element", pa.string()))),
            ("split", pa.string()),
            ("country", pa.string()),
            ("s1_name", pa.string()),
            ("s2v1_name", pa.string()),
            ("contains_seasonal_snow", pa.bool_()),
            ("contains_cloud_or_shadow", pa.bool_()),
        ]
    )
    cols = [
        [j.patch_id for j, _ in rows],
        [list(t.labels) for _, t in rows],
        [j.split for j, _ in rows],
        [j.v1.country for j, _ in rows],
        [j.v1.s1_name for j, _ in rows],
        [j.v1.name for j, _ in rows],
        [j.flag == "seasonal_snow" for j, _ in rows],
        [j.flag == "cloud_or_shadow" for j, _ in rows],
    ]
    return pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema)


def finish(root: Path, jobs: list[Job], truths: list[PatchTruth], options: dict[str, Any]) -> Path:
    import pyarrow.parquet as pq

    pairs = list(zip(jobs, truths, strict=True))
    pq.write_table(_table([p for p in pairs if p[0].flag is None]), root / METADATA, compression="zstd")
    pq.write_table(_table([p for p in pairs if p[0].flag is not None]), root / FLAGGED_METADATA, compression="zstd")
    return root
