"""The data contract: the one place where bands, classes, mappings and statistics are written down.

Every other module (readers, store, models, checkpoints) refers to bands and classes by *name*
and asks this module for orders, groups and statistics. No band index or class list is written
anywhere else, so a permutation can only happen here, in plain sight, and it is tested.

Conventions pinned here on purpose (the anchors each shipped at least one silent order bug):

* Band names are ``B01`` .. ``B12`` plus ``B8A`` (zero-padded; SEN12MS' ``B1`` is ``B01`` here).
* Band *selections* are ordered tuples of names. ``s2_10m_20m`` is the paper's 10 bands grouped by
  native resolution: the four 10 m bands, then the six 20 m bands, each in ESA wavelength order.
* Class orders are the official ones: BigEarthNet-43 in TU Berlin's ``label_indices.json`` order and
  BigEarthNet-19 in its nomenclature order (not alphabetical, unlike bigearthnet-common's
  ``NEW_LABELS`` and BigEarthNet v2's parquet, which we re-order on read).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

from landzoo.errors import LandzooError

__all__ = [
    "BANDS",
    "BAND_SELECTIONS",
    "BEN19",
    "BEN43",
    "BEN43_CLC_CODES",
    "BEN43_TO_BEN19",
    "BEN_BAND_STATS",
    "BEN_PATCH_METRES",
    "CLASS_SETS",
    "CLC_CODE_TO_BEN19",
    "EUROSAT_BANDS",
    "EUROSAT_CLASSES",
    "IGBP17",
    "IGBP17_TO_SIMPLE10",
    "REFERENCE_MAP_EXTRA_CODES",
    "S1_BANDS",
    "S2_L1C_BANDS",
    "S2_L2A_BANDS",
    "SCL_CLASSES",
    "SEN12MS_S2_BANDS",
    "SIMPLE10",
    "Band",
    "ContractError",
    "band",
    "band_groups",
    "band_stats",
    "ben43_to_ben19",
    "class_set",
    "group_name",
    "igbp17_to_simple10",
    "multi_hot",
    "patch_px",
    "resolve_bands",
]


class ContractError(LandzooError, ValueError):
    """A band, class or selection name that the contract does not know, or an order mismatch."""


@dataclass(frozen=True)
class Band:
    """One spectral band: its sensor-native ground sampling distance and central wavelength.

    ``wavelength_nm`` is the Sentinel-2A central wavelength (ESA S2 MSI spectral response, v3.0); it
    is what band-aware weight adaptation uses to find the spectrally nearest band. Sentinel-1 bands
    have no wavelength (``None``).
    """

    name: str
    sensor: str
    gsd_m: int
    wavelength_nm: float | None
    description: str

    @property
    def ben_patch_px(self) -> int:
        """Side in pixels of this band in a BigEarthNet patch (1200 m): 120, 60 or 20."""
        return BEN_PATCH_METRES // self.gsd_m


# A BigEarthNet patch covers 1200 m x 1200 m on the ground.
BEN_PATCH_METRES: Final = 1200

_BAND_LIST: Final = (
    Band("B01", "S2", 60, 442.7, "coastal aerosol"),
    Band("B02", "S2", 10, 492.4, "blue"),
    Band("B03", "S2", 10, 559.8, "green"),
    Band("B04", "S2", 10, 664.6, "red"),
    Band("B05", "S2", 20, 704.1, "red edge 1"),
    Band("B06", "S2", 20, 740.5, "red edge 2"),
    Band("B07", "S2", 20, 782.8, "red edge 3"),
    Band("B08", "S2", 10, 832.8, "near infrared"),
    Band("B8A", "S2", 20, 864.7, "narrow near infrared"),
    Band("B09", "S2", 60, 945.1, "water vapour"),
    Band("B10", "S2", 60, 1373.5, "cirrus (L1C only)"),
    Band("B11", "S2", 20, 1613.7, "short-wave infrared 1"),
    Band("B12", "S2", 20, 2202.4, "short-wave infrared 2"),
    Band("VV", "S1", 10, None, "C-band backscatter, vertical transmit / vertical receive (dB)"),
    Band("VH", "S1", 10, None, "C-band backscatter, vertical transmit / horizontal receive (dB)"),
)

#: Every band the project knows, by name.
BANDS: Final = MappingProxyType({b.name: b for b in _BAND_LIST})

#: Sentinel-2 L1C bands in ESA order (B8A after B08). SEN12MS stores exactly this order.
S2_L1C_BANDS: Final = tuple(b.name for b in _BAND_LIST if b.sensor == "S2")
#: Sentinel-2 L2A bands (no B10) in ESA order: BigEarthNet's band files, bigearthnet-common ``BEN_CHANNELS``.
S2_L2A_BANDS: Final = tuple(n for n in S2_L1C_BANDS if n != "B10")
#: Sentinel-1 polarisations as BigEarthNet names its files.
S1_BANDS: Final = ("VV", "VH")
#: SEN12MS S2 tif band order (13 bands, B8A 9th).
SEN12MS_S2_BANDS: Final = S2_L1C_BANDS
#: EuroSAT MS tif band order (13 bands, **B8A last**).
EUROSAT_BANDS: Final = (*(n for n in S2_L1C_BANDS if n != "B8A"), "B8A")

_S2_10M: Final = tuple(n for n in S2_L2A_BANDS if BANDS[n].gsd_m == 10)
_S2_20M: Final = tuple(n for n in S2_L2A_BANDS if BANDS[n].gsd_m == 20)
_S2_60M: Final = tuple(n for n in S2_L2A_BANDS if BANDS[n].gsd_m == 60)

#: Named band selections. Order is the channel order a model sees.
BAND_SELECTIONS: Final = MappingProxyType(
    {
        # The paper's 10 bands (HEAD order; the paper-era code fed B04,B03,B02 first, see docs).
        "s2_10m_20m": _S2_10M + _S2_20M,
        # All 12 L2A bands: the paper's 10, then the two 60 m bands, so s2_10m_20m is a prefix.
        "s2_all": _S2_10M + _S2_20M + _S2_60M,
        "s2_10m": _S2_10M,
        "rgb": ("B04", "B03", "B02"),
        "s1": S1_BANDS,
        "s1_s2_10m_20m": S1_BANDS + _S2_10M + _S2_20M,
    }
)


def band(name: str) -> Band:
    """Look a band up by name, with a clear error for an unknown one."""
    try:
        return BANDS[name]
    except KeyError:
        raise ContractError(f"unknown band {name!r}; known bands: {', '.join(BANDS)}") from None


def resolve_bands(selection: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a selection name (``"s2_10m_20m"``), a comma list (``"B04,B03,B02"``) or a sequence into names.

    Duplicates and unknown names are refused: a silent duplicate channel is as bad as a missing one.
    """
    if isinstance(selection, str):
        if selection in BAND_SELECTIONS:
            return BAND_SELECTIONS[selection]
        if "," not in selection and selection not in BANDS:
            raise ContractError(
                f"unknown band selection {selection!r}; named selections: {', '.join(BAND_SELECTIONS)}"
                " (or give band names separated by commas)"
            )
        names = tuple(s.strip() for s in selection.split(",") if s.strip())
    else:
        names = tuple(selection)
    for n in names:
        band(n)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ContractError(f"band selection repeats {', '.join(dup)}")
    if not names:
        raise ContractError("empty band selection")
    return names


def group_name(gsd_m: int) -> str:
    """Name of the band group of one native resolution: ``"10m"``, ``"20m"``, ``"60m"``."""
    return f"{gsd_m}m"


def band_groups(bands: Sequence[str], *, native: bool = True) -> dict[str, tuple[str, ...]]:
    """Split a band selection into groups that share a pixel grid, keeping the selection's order.

    With ``native=True`` (BigEarthNet) the groups are the sensor resolutions (10/20/60 m) and S1 joins
    the 10 m grid as a group of its own (``"s1"``, float dB, unlike uint16 S2). With ``native=False``
    (SEN12MS, EuroSAT: every band already resampled to one 10 m grid) all S2 bands form one ``"10m"`` group.
    Groups come out in order of first appearance in ``bands``.
    """
    groups: dict[str, list[str]] = {}
    for n in resolve_bands(bands):
        b = BANDS[n]
        key = "s1" if b.sensor == "S1" else (group_name(b.gsd_m) if native else group_name(10))
        groups.setdefault(key, []).append(n)
    return {k: tuple(v) for k, v in groups.items()}


def patch_px(group: str, *, native: bool = True) -> int | None:
    """Side in pixels of band group ``group`` in one BigEarthNet patch (1200 m): ``10m``/``s1`` 120, ``20m`` 60, ``60m`` 20.

    ``None`` where the footprint is not fixed by the contract (``native=False``: datasets resampled to one
    10 m grid, whose patch size is the dataset's own; the groups must then share one size).
    """
    if not native:
        return None
    if group == "s1":
        return BEN_PATCH_METRES // BANDS["VV"].gsd_m
    gsd = {group_name(b.gsd_m): b.gsd_m for b in _BAND_LIST}.get(group)
    if gsd is None:
        raise ContractError(f"unknown band group {group!r}")
    return BEN_PATCH_METRES // gsd


# --------------------------------------------------------------------------------------------------
# BigEarthNet classes
# --------------------------------------------------------------------------------------------------

#: (CLC level-3 code, exact 43-class name, 19-class name or None if the class is dropped), in the
#: order of TU Berlin's ``label_indices.json`` ``original_labels``.
_BEN43_TABLE: Final = (
    (111, "Continuous urban fabric", "Urban fabric"),
    (112, "Discontinuous urban fabric", "Urban fabric"),
    (121, "Industrial or commercial units", "Industrial or commercial units"),
    (122, "Road and rail networks and associated land", None),
    (123, "Port areas", None),
    (124, "Airports", None),
    (131, "Mineral extraction sites", None),
    (132, "Dump sites", None),
    (133, "Construction sites", None),
    (141, "Green urban areas", None),
    (142, "Sport and leisure facilities", None),
    (211, "Non-irrigated arable land", "Arable land"),
    (212, "Permanently irrigated land", "Arable land"),
    (213, "Rice fields", "Arable land"),
    (221, "Vineyards", "Permanent crops"),
    (222, "Fruit trees and berry plantations", "Permanent crops"),
    (223, "Olive groves", "Permanent crops"),
    (231, "Pastures", "Pastures"),
    (241, "Annual crops associated with permanent crops", "Permanent crops"),
    (242, "Complex cultivation patterns", "Complex cultivation patterns"),
    (
        243,
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
        "Land principally occupied by agriculture, with significant areas of natural vegetation",
    ),
    (244, "Agro-forestry areas", "Agro-forestry areas"),
    (311, "Broad-leaved forest", "Broad-leaved forest"),
    (312, "Coniferous forest", "Coniferous forest"),
    (313, "Mixed forest", "Mixed forest"),
    (321, "Natural grassland", "Natural grassland and sparsely vegetated areas"),
    (322, "Moors and heathland", "Moors, heathland and sclerophyllous vegetation"),
    (323, "Sclerophyllous vegetation", "Moors, heathland and sclerophyllous vegetation"),
    (324, "Transitional woodland/shrub", "Transitional woodland, shrub"),
    (331, "Beaches, dunes, sands", "Beaches, dunes, sands"),
    (332, "Bare rock", None),
    (333, "Sparsely vegetated areas", "Natural grassland and sparsely vegetated areas"),
    (334, "Burnt areas", None),
    (411, "Inland marshes", "Inland wetlands"),
    (412, "Peatbogs", "Inland wetlands"),
    (421, "Salt marshes", "Coastal wetlands"),
    (422, "Salines", "Coastal wetlands"),
    (423, "Intertidal flats", None),
    (511, "Water courses", "Inland waters"),
    (512, "Water bodies", "Inland waters"),
    (521, "Coastal lagoons", "Marine waters"),
    (522, "Estuaries", "Marine waters"),
    (523, "Sea and ocean", "Marine waters"),
)

#: The 43 CORINE land-cover classes of BigEarthNet v1, official order.
BEN43: Final = tuple(name for _, name, _ in _BEN43_TABLE)
#: CLC level-3 code of each BEN43 class.
BEN43_CLC_CODES: Final = MappingProxyType({name: code for code, name, _ in _BEN43_TABLE})

#: The BigEarthNet-19 nomenclature (Sumbul et al. 2021) in its official order.
BEN19: Final = (
    "Urban fabric",
    "Industrial or commercial units",
    "Arable land",
    "Permanent crops",
    "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas",
    "Broad-leaved forest",
    "Coniferous forest",
    "Mixed forest",
    "Natural grassland and sparsely vegetated areas",
    "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub",
    "Beaches, dunes, sands",
    "Inland wetlands",
    "Coastal wetlands",
    "Inland waters",
    "Marine waters",
)

#: 43 -> 19 mapping by name; the 11 dropped classes map to None.
BEN43_TO_BEN19: Final = MappingProxyType({name: new for _, name, new in _BEN43_TABLE})
#: CLC level-3 code (as in BigEarthNet v2 reference maps) -> 19-class name or None (unlabelled).
CLC_CODE_TO_BEN19: Final = MappingProxyType({code: new for code, _, new in _BEN43_TABLE})


def ben43_to_ben19(labels: Iterable[str]) -> list[str]:
    """Map 43-class names to the 19-class names, in BEN19 order, dropping the 11 unmapped classes."""
    out = set()
    for name in labels:
        if name not in BEN43_TO_BEN19:
            raise ContractError(f"unknown BigEarthNet-43 label {name!r}")
        new = BEN43_TO_BEN19[name]
        if new is not None:
            out.add(new)
    return [c for c in BEN19 if c in out]


# --------------------------------------------------------------------------------------------------
# SEN12MS and EuroSAT classes
# --------------------------------------------------------------------------------------------------

#: MODIS IGBP land-cover classes 1..17 (vector index 0..16).
IGBP17: Final = (
    "Evergreen Needleleaf Forests",
    "Evergreen Broadleaf Forests",
    "Deciduous Needleleaf Forests",
    "Deciduous Broadleaf Forests",
    "Mixed Forests",
    "Closed (Dense) Shrublands",
    "Open (Sparse) Shrublands",
    "Woody Savannas",
    "Savannas",
    "Grasslands",
    "Permanent Wetlands",
    "Croplands",
    "Urban and Built-Up Lands",
    "Cropland/Natural Vegetation Mosaics",
    "Permanent Snow and Ice",
    "Barren",
    "Water Bodies",
)

#: The simplified IGBP scheme of SEN12MS scene classification (Schmitt & Wu 2021; same as DFC2020).
SIMPLE10: Final = (
    "Forest",
    "Shrubland",
    "Savanna",
    "Grassland",
    "Wetlands",
    "Croplands",
    "Urban/Built-up",
    "Snow/Ice",
    "Barren",
    "Water",
)

#: IGBP-17 name -> simplified-10 name (the official ``dataset.py`` aggregation).
IGBP17_TO_SIMPLE10: Final = MappingProxyType(
    dict(
        zip(
            IGBP17,
            (
                *("Forest",) * 5,
                *("Shrubland",) * 2,
                *("Savanna",) * 2,
                "Grassland",
                "Wetlands",
                "Croplands",
                "Urban/Built-up",
                "Croplands",
                "Snow/Ice",
                "Barren",
                "Water",
            ),
            strict=True,
        )
    )
)


def igbp17_to_simple10(fractions: np.ndarray) -> np.ndarray:
    """Sum IGBP-17 coverage fractions (``[..., 17]``) into the simplified 10 classes (``[..., 10]``)."""
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.shape[-1] != len(IGBP17):
        raise ContractError(f"expected {len(IGBP17)} IGBP fractions, got shape {fractions.shape}")
    out = np.zeros((*fractions.shape[:-1], len(SIMPLE10)), dtype=np.float64)
    for i, name in enumerate(IGBP17):
        out[..., SIMPLE10.index(IGBP17_TO_SIMPLE10[name])] += fractions[..., i]
    return out


#: EuroSAT's 10 classes, exactly as its folder names, in alphabetical (torchgeo) order.
EUROSAT_CLASSES: Final = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)

#: Every class set by name; readers, models and checkpoints name one of these.
CLASS_SETS: Final = MappingProxyType(
    {
        "ben19": BEN19,
        "ben43": BEN43,
        "igbp17": IGBP17,
        "sen12ms_simple10": SIMPLE10,
        "eurosat10": EUROSAT_CLASSES,
    }
)


def class_set(name: str) -> tuple[str, ...]:
    """Look a class set up by name, with a clear error for an unknown one."""
    try:
        return CLASS_SETS[name]
    except KeyError:
        raise ContractError(f"unknown class set {name!r}; known: {', '.join(CLASS_SETS)}") from None


def multi_hot(labels: Iterable[str], classes: Sequence[str]) -> np.ndarray:
    """Encode class names as a uint8 multi-hot vector in ``classes`` order; unknown names are an error."""
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros(len(classes), dtype=np.uint8)
    for name in labels:
        try:
            out[index[name]] = 1
        except KeyError:
            raise ContractError(f"label {name!r} is not in the class set") from None
    return out


# --------------------------------------------------------------------------------------------------
# Normalisation statistics
# --------------------------------------------------------------------------------------------------

#: BigEarthNet per-band (mean, std) of raw DNs (S2) and dB (S1), as used by the paper's ``inputs.py``
#: (from TU Berlin's BigEarthNet-19 code). Normalise as ``(x - mean) / std``.
BEN_BAND_STATS: Final = MappingProxyType(
    {
        "B01": (340.76769064, 554.81258967),
        "B02": (429.9430203, 572.41639287),
        "B03": (614.21682446, 582.87945694),
        "B04": (590.23569706, 675.88746967),
        "B05": (950.68368468, 729.89827633),
        "B06": (1792.46290469, 1096.01480586),
        "B07": (2075.46795189, 1273.45393088),
        "B08": (2218.94553375, 1365.45589904),
        "B8A": (2266.46036911, 1356.13789355),
        "B09": (2246.0605464, 1302.3292881),
        "B11": (1594.42694882, 1079.19066363),
        "B12": (1009.32729131, 818.86747235),
        "VV": (-12.619993741972035, 5.115911777546365),
        "VH": (-19.29044597721542, 5.464428464912864),
    }
)


def band_stats(bands: Sequence[str], stats: MappingProxyType | dict = BEN_BAND_STATS) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std vectors (float32) for ``bands`` in that order; a band without statistics is an error."""
    names = resolve_bands(bands)
    missing = [n for n in names if n not in stats]
    if missing:
        raise ContractError(f"no normalisation statistics for band(s) {', '.join(missing)}")
    mean = np.array([stats[n][0] for n in names], dtype=np.float32)
    std = np.array([stats[n][1] for n in names], dtype=np.float32)
    return mean, std


# --------------------------------------------------------------------------------------------------
# BigEarthNet v2 reference maps (added with the BigEarthNet readers)
# --------------------------------------------------------------------------------------------------

#: Pixel values a v2 reference map may hold besides the 43 codes of :data:`BEN43_CLC_CODES`: GDAL nodata,
#: the CLC class never present in BigEarthNet's labels, and the pipeline's "UNLABELED" (formats.md 2.3).
#: None of them maps to a BigEarthNet-19 class.
REFERENCE_MAP_EXTRA_CODES: Final = MappingProxyType(
    {0: "no data", 335: "Glaciers and perpetual snow", 999: "UNLABELED"}
)


# --------------------------------------------------------------------------------------------------
# Sentinel-2 L2A scene classification (SCL), read by ``landzoo map`` and written by the scene generator
# --------------------------------------------------------------------------------------------------

#: The L2A scene classification values (sen2cor), by value.
SCL_CLASSES: Final = MappingProxyType(
    {
        0: "no data",
        1: "saturated or defective",
        2: "dark area pixels",
        3: "cloud shadows",
        4: "vegetation",
        5: "not vegetated",
        6: "water",
        7: "unclassified",
        8: "cloud medium probability",
        9: "cloud high probability",
        10: "thin cirrus",
        11: "snow",
    }
)
