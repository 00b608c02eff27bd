"""Synthetic BigEarthNet v1.0 (S2, optionally S1) in the exact layout and formats of the real archives.

Patch names are REAL v1 names drawn (seeded) from the official split lists shipped in ``bigearthnet-common``
(so the 5-digit-time quirk appears, and the official country/season table and S1 pairing apply), in
proportion to the three splits; ``OUT/splits/{train,val,test}.csv`` (one column, CRLF, no header) list
exactly the generated patches by their official split. The tile of each patch comes from its paired S1 name
(``..._33UUP_87_48``), hence the UTM zone, the corner (:func:`landzoo.synthetic.geo.patch_corner`, the same as
the real JSONs) and the L1C ``tile_source``. The JSON ``acquisition_date`` is the true time (hour's leading
zero restored).

Labels: 1 to 6 CLC classes per patch, drawn from (softened) real class frequencies with co-occurrence by CLC
level 1 (and coastal classes together; no sea in landlocked countries). A class is labelled iff it covers at
least :data:`MIN_FRAC` of the patch; its JSON lists the 43-class names in CLC code order (as the real ones).
Every patch has at least one BigEarthNet-19 label, as every patch of the official splits does.
"""

from __future__ import annotations

import bz2
import functools
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.synthetic import PatchTruth, geo, scene
from landzoo.synthetic.common import allocate, check_known, kind_map, layout, makedirs, write_bytes, write_crlf
from landzoo.synthetic.signatures import CLASS_KINDS, KINDS

__all__ = ["BEN43_PRIOR", "MIN_FRAC", "OUTPUTS", "S1_FOLDER", "S2_FOLDER", "choose_ben43", "finish", "make", "plan"]

S2_FOLDER = "BigEarthNet-v1.0"
S1_FOLDER = "BigEarthNet-S1-v1.0"
OUTPUTS = (S2_FOLDER, S1_FOLDER, "splits")
SPLITS = ("train", "val", "test")
#: Smallest area share of a labelled class (288 px of 14,400); smaller slivers are merged into neighbours.
MIN_FRAC = 0.02
PX = contract.BEN_PATCH_METRES // 10
#: Redraws allowed for a patch whose draw breaks a dataset rule (rare); the last draw is kept regardless.
MAX_DRAWS = 20

#: Approximate patch counts per 43-class label in BigEarthNet v1 (Sumbul et al. 2019); sampling uses them
#: to the power 0.6, softening the imbalance (rare classes still appear in a few thousand patches).
BEN43_PRIOR = {
    "Continuous urban fabric": 10784, "Discontinuous urban fabric": 69872, "Industrial or commercial units": 12895,
    "Road and rail networks and associated land": 3384, "Port areas": 509, "Airports": 979,
    "Mineral extraction sites": 4618, "Dump sites": 959, "Construction sites": 1174, "Green urban areas": 1786,
    "Sport and leisure facilities": 5353, "Non-irrigated arable land": 196695, "Permanently irrigated land": 13589,
    "Rice fields": 3793, "Vineyards": 9567, "Fruit trees and berry plantations": 4754, "Olive groves": 12538,
    "Pastures": 103554, "Annual crops associated with permanent crops": 7022, "Complex cultivation patterns": 107786,
    "Land principally occupied by agriculture, with significant areas of natural vegetation": 147095,
    "Agro-forestry areas": 30674, "Broad-leaved forest": 150944, "Coniferous forest": 211703, "Mixed forest": 217119,
    "Natural grassland": 12835, "Moors and heathland": 5890, "Sclerophyllous vegetation": 11241,
    "Transitional woodland/shrub": 173506, "Beaches, dunes, sands": 1578, "Bare rock": 3277,
    "Sparsely vegetated areas": 1563, "Burnt areas": 328, "Inland marshes": 6236, "Peatbogs": 23207,
    "Salt marshes": 1562, "Salines": 424, "Intertidal flats": 1003, "Water courses": 10572, "Water bodies": 83811,
    "Coastal lagoons": 1498, "Estuaries": 1086, "Sea and ocean": 81612,
}  # fmt: skip
_PRIOR_POWER = 0.6
_N_CLASSES = (1, 2, 3, 4, 5, 6)
_N_CLASSES_P = (0.14, 0.30, 0.28, 0.17, 0.08, 0.03)
_COASTAL = frozenset({123, 331, 421, 422, 423, 521, 522, 523})
_LANDLOCKED = frozenset({"Austria", "Switzerland", "Luxembourg", "Kosovo", "Serbia"})
#: Vegetation state by the official season column (1 = summer peak).
PHENOLOGY = {"Winter": 0.72, "Spring": 0.95, "Summer": 1.05, "Fall": 0.88}
#: The two 5-digit stems whose restored time is no valid time (61 s): the real JSON of 20180204T94161 says
#: 09:41:56; 20180204T94160 is taken one second earlier (no real JSON of it at hand).
_TRUE_TIME = {"20180204T94161": "094156", "20180204T94160": "094155"}
_V1_NAME = re.compile(r"(S2[AB])_MSIL2A_(\d{8})T(\d{5,6})_(\d{1,2})_(\d{1,2})")


# --------------------------------------------------------------------------------------------------
# Official lists (bigearthnet-common package data; its base module is not imported, it breaks on fastcore)
# --------------------------------------------------------------------------------------------------


def _package_bytes(name: str) -> bytes:
    from landzoo.synthetic import GenerateError

    try:
        return bz2.decompress((resources.files("bigearthnet_common") / name).read_bytes())
    except ModuleNotFoundError:
        raise GenerateError(
            "synthetic BigEarthNet draws real patch names from the package bigearthnet-common, which is not installed"
        ) from None


@functools.cache
def package_list(name: str) -> tuple[str, ...]:
    """Names of a bz2 list in bigearthnet-common (CRLF or LF), cached per process."""
    return tuple(s for s in (ln.strip() for ln in _package_bytes(name).decode().splitlines()) if s)


def official_splits() -> dict[str, tuple[str, ...]]:
    return {s: package_list(f"{s}.csv.bz2") for s in SPLITS}


@functools.lru_cache(maxsize=1)
def _name_table() -> Any:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return pacsv.read_csv(pa.BufferReader(_package_bytes("s1_s2_name_country_season.csv.bz2")))


def name_info(names: list[str]) -> dict[str, tuple[str, str, str]]:
    """S2 v1 name -> (S1 name, country, season) from the official 590k-row table (about 2.5 s the first time)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = _name_table()
    sub = table.filter(pc.is_in(table.column("s2_name"), value_set=pa.array(names, type=pa.string())))
    cols = [sub.column(c).to_pylist() for c in ("s2_name", "s1_name", "country", "season")]
    return {s2: (s1, country, season) for s2, s1, country, season in zip(*cols, strict=True)}


# --------------------------------------------------------------------------------------------------
# Names and georeferencing of one real v1 patch
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class V1Name:
    """A parsed v1 S2 name with what follows from its S1 pair: tile, zone, corner, true time."""

    name: str
    satellite: str
    stamp: str  # date + 'T' + time as written in the name (5 or 6 digits)
    when: datetime
    col: int
    row: int
    tile: str
    s1_name: str
    country: str
    season: str

    @property
    def zone(self) -> int:
        return int(self.tile[1:3])

    @property
    def corner(self) -> tuple[int, int]:
        return geo.patch_corner(self.tile, self.col, self.row)


def parse_v1(name: str, info: tuple[str, str, str]) -> V1Name:
    m = _V1_NAME.fullmatch(name)
    if m is None:
        raise ValueError(f"{name!r} is not a BigEarthNet v1 S2 name")
    sat, date, time, col, row = m.groups()
    true_time = _TRUE_TIME.get(f"{date}T{time}", time.zfill(6))  # restore the hour's leading 0
    when = datetime.strptime(date + true_time, "%Y%m%d%H%M%S")
    s1_name, country, season = info
    tile = "T" + s1_name.split("_")[-3]
    return V1Name(name, sat, f"{date}T{time}", when, int(col), int(row), tile, s1_name, country, season)


# --------------------------------------------------------------------------------------------------
# Classes of one patch
# --------------------------------------------------------------------------------------------------


def choose_ben43(rng: np.random.Generator, *, landlocked: bool = False) -> tuple[list[str], np.ndarray]:
    """1..6 distinct BigEarthNet-43 classes and their relative areas (Dirichlet) for one patch.

    The first class follows the softened prior; the others favour classes of the same CLC level 1 (x2.5)
    and coastal classes after a coastal one (x6). At least one area (non-linear) class is always included.
    """
    names = list(contract.BEN43)
    code = contract.BEN43_CLC_CODES
    if landlocked:
        names = [c for c in names if code[c] not in _COASTAL or code[c] == 123]
    prior = np.array([BEN43_PRIOR[c] for c in names], dtype=np.float64) ** _PRIOR_POWER
    k = int(rng.choice(_N_CLASSES, p=_N_CLASSES_P))
    chosen: list[str] = []
    for _ in range(k):
        w = prior.copy()
        for c in chosen:
            for j, other in enumerate(names):
                if code[other] // 100 == code[c] // 100:
                    w[j] *= 2.5
                if code[other] in _COASTAL and code[c] in _COASTAL:
                    w[j] *= 6.0
        for c in chosen:
            w[names.index(c)] = 0.0
        if w.sum() <= 0:
            break
        chosen.append(names[int(rng.choice(len(names), p=w / w.sum()))])
    linear = {c for c in chosen if _is_linear(c)}
    if len(linear) == len(chosen):  # a patch needs ground under its rivers and roads
        area = [j for j, c in enumerate(names) if not _is_linear(c) and c not in chosen]
        w = prior[area]
        chosen.append(names[area[int(rng.choice(len(area), p=w / w.sum()))]])
    weights = rng.dirichlet(np.full(len(chosen), 1.2))
    return chosen, weights


def _is_linear(ben43: str) -> bool:
    return KINDS[CLASS_KINDS["ben43"][ben43]].linear


def render_ben(
    rng: np.random.Generator, bank: scene.Bank, classes: list[str], weights: np.ndarray, phenology: float
) -> tuple[scene.Scene, dict[str, np.ndarray], list[str]]:
    """Scene and L2A bands (native sizes) of a BigEarthNet patch; returns the present classes in BEN43 order."""
    kinds = [CLASS_KINDS["ben43"][c] for c in classes]
    sc = scene.draw_scene(rng, bank, kinds, weights, PX, contract.S2_L2A_BANDS, min_frac=MIN_FRAC, phenology=phenology)
    bands = scene.sensor_bands(rng, sc, "L2A", native=True)
    present = {c for c, f in zip(classes, sc.fractions, strict=True) if f > 0}
    return sc, bands, [c for c in contract.BEN43 if c in present]


def band_layout(band: str, zone: int, *, v2: bool = False) -> Any:
    gsd = contract.band(band).gsd_m
    px = contract.band(band).ben_patch_px
    return layout(
        width=px, height=px, dtype="uint16", zone=zone, pixel_size=(float(gsd), float(gsd)),
        nodata="0" if v2 else None, short_bytecounts=v2,
    )  # fmt: skip


def s1_layout(zone: int) -> Any:
    return layout(width=PX, height=PX, dtype="float32", zone=zone, pixel_size=(10.0, 10.0))


# --------------------------------------------------------------------------------------------------
# The writer interface (see landzoo.synthetic.synthesize)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    index: int
    v1: V1Name
    split: str


#: Patches in the three official v1 splits together (the most that can be drawn).
SPLIT_TOTAL = 519_284


def check_patch_count(patches: int, dataset: str) -> None:
    from landzoo.synthetic import GenerateError

    if patches > SPLIT_TOTAL:
        raise GenerateError(f"{dataset} draws real patch names from the official splits: at most {SPLIT_TOTAL:,}")


def check_options(patches: int, options: dict[str, Any]) -> dict[str, Any]:
    check_known(options, ("s1",), "bigearthnet-v1")
    check_patch_count(patches, "bigearthnet-v1")
    return {"s1": bool(options.get("s1", False))}


def draw_names(
    rng: np.random.Generator, pools: dict[str, tuple[str, ...]], counts: dict[str, int]
) -> dict[str, list[str]]:
    """Draw ``counts[s]`` distinct names from each pool, seeded; sorted within each."""
    from landzoo.synthetic import GenerateError

    out = {}
    for s, pool in pools.items():
        if counts[s] > len(pool):
            raise GenerateError(f"cannot draw {counts[s]} patches from a list of {len(pool)}")
        idx = rng.choice(len(pool), size=counts[s], replace=False)
        out[s] = sorted(pool[i] for i in idx)
    return out


def plan(rng: np.random.Generator, patches: int, options: dict[str, Any]) -> list[Job]:
    pools = official_splits()
    counts = dict(zip(SPLITS, allocate(patches, [len(pools[s]) for s in SPLITS]), strict=True))
    drawn = draw_names(rng, pools, counts)
    info = name_info([n for s in SPLITS for n in drawn[s]])
    rows = sorted((n, s) for s in SPLITS for n in drawn[s])
    return [Job(i, parse_v1(n, info[n]), s) for i, (n, s) in enumerate(rows)]


def s2_json(labels: list[str], v1: V1Name) -> bytes:
    ulx, uly = v1.corner
    doc = {
        "labels": labels,
        "coordinates": {"ulx": ulx, "uly": uly, "lrx": ulx + geo.PATCH_METRES, "lry": uly - geo.PATCH_METRES},
        "projection": geo.utm_wkt(v1.zone),
        "tile_source": geo.l1c_product_name(v1.satellite, v1.stamp, v1.when, v1.tile),
        "acquisition_date": v1.when.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return json.dumps(doc).encode("utf-8")  # one line, no trailing newline, ", " and ": " as the originals


def s1_json(labels: list[str], v1: V1Name) -> bytes:
    ulx, uly = v1.corner
    sat, start = v1.s1_name[:3], datetime.strptime(v1.s1_name.split("_")[4], "%Y%m%dT%H%M%S")
    doc = {
        "labels": labels,
        # 'lly', not 'lry': the typo of the real S1 v1.0 JSONs
        "coordinates": {"ulx": ulx, "uly": uly, "lrx": ulx + geo.PATCH_METRES, "lly": uly - geo.PATCH_METRES},
        "projection": geo.utm_wkt(v1.zone),
        "corresponding_s2_patch": v1.name,
        "scene_source": geo.s1_scene_source(sat, start),
        "acquisition_time": start.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    return json.dumps(doc).encode("utf-8")


def write_s1(folder: Path, s1_name: str, s1: dict[str, np.ndarray], zone: int, corner: tuple[int, int]) -> None:
    makedirs(folder)
    lay = s1_layout(zone)
    for pol in contract.S1_BANDS:
        write_bytes(folder / f"{s1_name}_{pol}.tif", lay.encode(s1[pol], *corner))


def make(
    job: Job, rng: np.random.Generator, bank: scene.Bank, options: dict[str, Any], root: Path, keep_arrays: bool
) -> PatchTruth:
    v1 = job.v1
    phenology = PHENOLOGY.get(v1.season, 1.0) * (1.0 + 0.04 * rng.standard_normal())
    for _ in range(MAX_DRAWS):  # patches of the official splits all have a 19-class label; redraw (seeded) if not
        classes, weights = choose_ben43(rng, landlocked=v1.country in _LANDLOCKED)
        sc, bands, labels = render_ben(rng, bank, classes, weights, phenology)
        if contract.ben43_to_ben19(labels):
            break
    stem = os.path.join(root, S2_FOLDER, v1.name, v1.name)  # plain strings: pathlib costs show at 130k files
    makedirs(os.path.dirname(stem))
    corner = v1.corner
    for name, arr in bands.items():
        write_bytes(f"{stem}_{name}.tif", band_layout(name, v1.zone).encode(arr, *corner))
    write_bytes(f"{stem}_labels_metadata.json", s2_json(labels, v1))
    arrays = dict(bands) if keep_arrays else None
    if options["s1"]:
        s1 = scene.sensor_s1(rng, sc)
        write_s1(root / S1_FOLDER / v1.s1_name, v1.s1_name, s1, v1.zone, corner)
        write_bytes(root / S1_FOLDER / v1.s1_name / f"{v1.s1_name}_labels_metadata.json", s1_json(labels, v1))
        if arrays is not None:
            arrays.update(s1)
    meta = {
        "country": v1.country,
        "season": v1.season,
        "s1_name": v1.s1_name,
        "tile": v1.tile,
        "fractions": {c: float(f) for c, f in zip(classes, sc.fractions, strict=True)},
        "kinds": {c: CLASS_KINDS["ben43"][c] for c in labels},
    }
    if keep_arrays:
        meta.update(kind_map(sc))
    return PatchTruth(v1.name, job.split, tuple(labels), meta, arrays)


def finish(root: Path, jobs: list[Job], truths: list[PatchTruth], options: dict[str, Any]) -> Path:
    for s in SPLITS:
        write_crlf(root / "splits" / f"{s}.csv", [j.v1.name for j in jobs if j.split == s])
    return root
