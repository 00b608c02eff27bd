"""One table of land-cover *kinds*, shared by every synthetic dataset, and each dataset's classes mapped to it.

A kind is what a pixel is made of: a mix of two *materials* (reflectance curves) and a texture that
varies the mix and the brightness in space. Its signature is a curve over wavelength, evaluated at each
band's central wavelength from :data:`landzoo.contract.BANDS`, so any band set works (B10 included).

Land-cover types common to several datasets map to the SAME kind by name (BigEarthNet "Coniferous
forest", IGBP "Evergreen Needleleaf Forests" and EuroSAT "Forest" share ``coniferous_forest``), so what a
model learns on one dataset transfers. Within one dataset every class has its own kind, and similar classes
(the three forests, arable vs pasture vs complex cultivation, the urban fabrics) have close but distinct
mixes and textures.

Sensor level: BigEarthNet is L2A (bottom of atmosphere); SEN12MS and EuroSAT are L1C (top of atmosphere).
:func:`atmosphere` adds L1C's path radiance (Rayleigh-like, strongest in B01/B02) and its absorption in
B09 (water vapour) and B10 (cirrus), as seen in real EuroSAT tifs (B10 ~ 10 DN, B09 ~ 0.27 x B8A).
Reflectances below are x 10,000 (the datasets' DN scale).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np

from landzoo import contract

__all__ = [
    "ANCHOR_NM",
    "CLASS_KINDS",
    "EUROSAT_RECIPES",
    "KINDS",
    "MATERIALS",
    "EuroSatRecipe",
    "Kind",
    "atmosphere",
    "kind_s1",
    "kind_signature",
    "material_curve",
]

#: Wavelengths (nm) at which the material curves are tabulated; curves are linear in between.
ANCHOR_NM: Final = (443, 490, 560, 665, 705, 740, 783, 842, 865, 945, 1375, 1610, 2190)

#: Material -> (surface reflectance x 10,000 at ANCHOR_NM, (VV, VH) backscatter in dB).
# fmt: off
MATERIALS: Final = MappingProxyType(
    {
        # vegetation: low visible, red edge, high NIR; the forests are darker than crops and grass
        "conifer": ((180, 230, 420, 210, 650, 1700, 2150, 2350, 2400, 2350, 1450, 1050, 450), (-7.5, -13.0)),
        "broadleaf": ((220, 310, 620, 290, 950, 2500, 3300, 3600, 3650, 3550, 2250, 1700, 750), (-7.0, -12.5)),
        "evergreen_broadleaf": ((200, 280, 560, 250, 850, 2300, 3050, 3350, 3400, 3300, 2100, 1550, 650), (-6.5, -12.0)),
        "larch": ((200, 270, 500, 260, 800, 2000, 2600, 2850, 2900, 2850, 1800, 1350, 600), (-7.5, -13.5)),
        "shrub": ((280, 380, 620, 480, 950, 1750, 2150, 2350, 2400, 2350, 2250, 2000, 1100), (-9.0, -15.5)),
        "sclerophyll": ((330, 430, 640, 600, 980, 1550, 1850, 2000, 2050, 2050, 2400, 2250, 1350), (-9.5, -16.0)),
        "heath": ((260, 340, 500, 460, 780, 1400, 1750, 1950, 2000, 2000, 1900, 1600, 850), (-11.0, -17.5)),
        "grass": ((330, 450, 760, 620, 1150, 1950, 2350, 2550, 2600, 2550, 2600, 2350, 1450), (-11.5, -18.0)),
        "lush_grass": ((260, 380, 820, 430, 1250, 2700, 3350, 3600, 3650, 3550, 2650, 2050, 1050), (-10.5, -17.0)),
        "green_crop": ((280, 400, 850, 450, 1300, 2800, 3500, 3800, 3850, 3750, 2700, 2100, 1050), (-9.5, -16.0)),
        "paddy": ((300, 420, 700, 480, 850, 1700, 2150, 2350, 2400, 2300, 1400, 1000, 500), (-13.0, -20.0)),
        "marsh": ((260, 360, 580, 420, 800, 1600, 2000, 2200, 2250, 2150, 1400, 1000, 520), (-12.0, -19.0)),
        "peat": ((230, 300, 450, 400, 650, 1200, 1500, 1650, 1700, 1650, 1200, 900, 500), (-13.5, -20.5)),
        "salt_marsh": ((330, 430, 600, 520, 780, 1250, 1500, 1650, 1700, 1650, 1300, 1050, 650), (-13.0, -20.0)),
        # soils, rock, sand, built-up
        "soil": ((700, 900, 1200, 1500, 1650, 1750, 1850, 1950, 2000, 2050, 2900, 3100, 2600), (-13.0, -20.5)),
        "dry_soil": ((900, 1150, 1500, 1850, 2000, 2100, 2200, 2300, 2350, 2400, 3300, 3500, 3000), (-14.0, -22.0)),
        "rock": ((1100, 1250, 1450, 1650, 1750, 1850, 1950, 2050, 2100, 2150, 2600, 2900, 2600), (-11.0, -19.0)),
        "sand": ((1500, 1800, 2300, 2800, 3000, 3100, 3200, 3300, 3350, 3400, 3800, 4000, 3400), (-17.0, -25.0)),
        "burnt": ((350, 400, 450, 500, 600, 750, 850, 950, 1000, 1050, 1600, 1800, 1500), (-12.5, -20.0)),
        "mud": ((550, 650, 800, 850, 880, 900, 920, 950, 960, 950, 700, 500, 330), (-15.0, -24.0)),
        "salt_pan": ((2500, 2800, 3100, 3300, 3400, 3450, 3500, 3500, 3500, 3450, 3000, 2400, 1600), (-16.0, -25.0)),
        "roof": ((900, 1050, 1150, 1200, 1300, 1400, 1450, 1500, 1520, 1550, 1800, 1900, 1750), (-2.0, -10.0)),
        "bright_roof": ((1300, 1500, 1650, 1750, 1850, 1900, 1950, 2000, 2020, 2050, 2400, 2550, 2400), (0.0, -8.5)),
        "asphalt": ((700, 800, 900, 950, 1000, 1050, 1080, 1100, 1120, 1150, 1400, 1500, 1400), (-14.0, -23.0)),
        "snow": ((9000, 9100, 9200, 9000, 8800, 8600, 8400, 8000, 7800, 7000, 1000, 600, 300), (-10.0, -18.0)),
        # water: dark beyond the red, sea darker and bluer than lakes, estuaries turbid
        "lake": ((450, 550, 650, 400, 330, 220, 180, 150, 140, 120, 60, 40, 30), (-20.0, -27.0)),
        "sea": ((600, 650, 520, 250, 180, 140, 110, 90, 80, 70, 40, 30, 20), (-19.0, -26.5)),
        "turbid_water": ((700, 800, 950, 800, 650, 400, 300, 250, 230, 200, 80, 50, 30), (-18.0, -25.5)),
    }
)
# fmt: on

#: Texture patterns (see :mod:`landzoo.synthetic.scene`): how the mix and brightness vary inside a region.
PATTERNS: Final = ("smooth", "blobby", "fine", "blocks", "parcels", "rows", "dots")


@dataclass(frozen=True)
class Kind:
    """A land-cover kind: ``frac`` of material ``a`` mixed with ``b``, textured by ``pattern``.

    Per pixel, the fraction of ``a`` is ``clip(frac + contrast * t)`` and the brightness ``1 + bright * t``,
    where ``t`` in [-1, 1] is the pattern's field at spatial ``scale`` (pixels of 10 m). ``linear`` kinds
    (rivers, roads) are drawn as meandering strips of width ``width`` px instead of area regions.
    """

    a: str
    b: str
    frac: float
    pattern: str
    scale: float
    contrast: float = 0.0
    bright: float = 0.05
    linear: bool = False
    width: float = 0.0


def _k(
    a: str,
    b: str | None,
    frac: float,
    pattern: str,
    scale: float,
    contrast: float = 0.0,
    bright: float = 0.05,
    **kw: object,
) -> Kind:
    return Kind(a, b or a, frac, pattern, scale, contrast, bright, **kw)  # type: ignore[arg-type]


#: Every kind, by name. Comments name the classes that use it (B = BigEarthNet, I = IGBP, E = EuroSAT).
# fmt: off
KINDS: Final = MappingProxyType(
    {
        "dense_urban": _k("roof", "asphalt", 0.7, "fine", 1.0, 0.35, 0.25),  # B111
        "suburban": _k("roof", "lush_grass", 0.55, "blocks", 2.0, 0.45, 0.12),  # B112, I13, E Residential
        "industrial": _k("bright_roof", "asphalt", 0.7, "blocks", 5.0, 0.5, 0.1),  # B121, E Industrial
        "road_rail": _k("asphalt", "grass", 0.85, "smooth", 4.0, 0.1, 0.05, linear=True, width=3.0),  # B122, E Highway
        "port": _k("bright_roof", "sea", 0.6, "blocks", 6.0, 0.55, 0.1),  # B123
        "airport": _k("asphalt", "grass", 0.35, "rows", 14.0, 0.6, 0.05),  # B124
        "mineral_extraction": _k("rock", "soil", 0.6, "blobby", 6.0, 0.45, 0.15),  # B131
        "dump": _k("soil", "roof", 0.65, "fine", 2.0, 0.45, 0.15),  # B132
        "construction": _k("soil", "asphalt", 0.6, "blocks", 3.0, 0.5, 0.1),  # B133
        "green_urban": _k("lush_grass", "roof", 0.8, "dots", 3.0, 0.5, 0.05),  # B141
        "sport": _k("lush_grass", "soil", 0.75, "blocks", 7.0, 0.5, 0.05),  # B142
        "arable": _k("green_crop", "soil", 0.5, "parcels", 24.0, 0.5, 0.05),  # B211, I12, E AnnualCrop
        "irrigated": _k("green_crop", "soil", 0.78, "parcels", 30.0, 0.3, 0.05),  # B212
        "rice": _k("paddy", "lake", 0.75, "parcels", 16.0, 0.25, 0.05),  # B213
        "vineyard": _k("shrub", "dry_soil", 0.4, "rows", 3.0, 0.55, 0.05),  # B221, E PermanentCrop
        "orchard": _k("broadleaf", "grass", 0.5, "rows", 5.0, 0.5, 0.05),  # B222, E PermanentCrop
        "olive": _k("sclerophyll", "dry_soil", 0.35, "dots", 2.0, 0.5, 0.05),  # B223, E PermanentCrop
        "pasture": _k("lush_grass", "grass", 0.8, "smooth", 10.0, 0.3, 0.05),  # B231, E Pasture
        "annual_permanent": _k("green_crop", "shrub", 0.5, "parcels", 12.0, 0.55, 0.05),  # B241
        "complex_cultivation": _k("lush_grass", "soil", 0.6, "parcels", 8.0, 0.5, 0.05),  # B242
        "agri_natural": _k("grass", "broadleaf", 0.6, "blobby", 8.0, 0.5, 0.05),  # B243, I14
        "agroforestry": _k("grass", "evergreen_broadleaf", 0.7, "dots", 3.0, 0.5, 0.05),  # B244, I8
        "broadleaf_forest": _k("broadleaf", None, 1.0, "blobby", 3.0, 0.0, 0.12),  # B311, I4, E Forest
        "coniferous_forest": _k("conifer", None, 1.0, "blobby", 2.0, 0.0, 0.15),  # B312, I1, E Forest
        "mixed_forest": _k("broadleaf", "conifer", 0.5, "blobby", 3.0, 0.4, 0.1),  # B313, I5, E Forest
        "natural_grassland": _k("grass", "soil", 0.85, "smooth", 8.0, 0.25, 0.06),  # B321, I10, E HerbaceousVeg.
        "moors_heath": _k("heath", "rock", 0.85, "blobby", 6.0, 0.3, 0.08),  # B322
        "sclerophyllous": _k("sclerophyll", "dry_soil", 0.75, "fine", 2.0, 0.35, 0.08),  # B323, I6
        "transitional_woodland": _k("shrub", "broadleaf", 0.6, "dots", 2.0, 0.45, 0.06),  # B324
        "beach_sand": _k("sand", None, 1.0, "smooth", 6.0, 0.0, 0.1),  # B331
        "bare_rock": _k("rock", None, 1.0, "fine", 2.0, 0.0, 0.2),  # B332, I16
        "sparse_vegetation": _k("rock", "grass", 0.6, "dots", 2.0, 0.4, 0.08),  # B333
        "burnt": _k("burnt", "soil", 0.8, "blobby", 6.0, 0.3, 0.08),  # B334
        "inland_marsh": _k("marsh", "lake", 0.8, "blobby", 4.0, 0.4, 0.05),  # B411, I11
        "peatbog": _k("peat", "heath", 0.7, "blobby", 5.0, 0.3, 0.05),  # B412
        "salt_marsh": _k("salt_marsh", "mud", 0.75, "blobby", 4.0, 0.4, 0.05),  # B421
        "salines": _k("salt_pan", "sea", 0.7, "blocks", 6.0, 0.5, 0.05),  # B422
        "intertidal": _k("mud", "sea", 0.7, "smooth", 6.0, 0.4, 0.05),  # B423
        "water_course": _k("lake", "turbid_water", 0.8, "smooth", 6.0, 0.2, 0.03, linear=True, width=7.0),  # B511, E River
        "water_body": _k("lake", None, 1.0, "smooth", 12.0, 0.0, 0.04),  # B512, I17, E SeaLake
        "lagoon": _k("turbid_water", "lake", 0.6, "smooth", 10.0, 0.3, 0.03),  # B521
        "estuary": _k("turbid_water", "sea", 0.5, "smooth", 10.0, 0.4, 0.03),  # B522
        "sea": _k("sea", None, 1.0, "smooth", 16.0, 0.0, 0.03),  # B523, E SeaLake
        # IGBP-only kinds
        "evergreen_broadleaf_forest": _k("evergreen_broadleaf", None, 1.0, "blobby", 3.0, 0.0, 0.1),  # I2
        "deciduous_needleleaf_forest": _k("larch", None, 1.0, "blobby", 2.0, 0.0, 0.12),  # I3
        "open_shrubland": _k("shrub", "dry_soil", 0.4, "dots", 2.0, 0.45, 0.06),  # I7
        "savanna": _k("grass", "shrub", 0.75, "dots", 4.0, 0.45, 0.06),  # I9
        "snow_ice": _k("snow", "rock", 0.9, "smooth", 8.0, 0.15, 0.05),  # I15
    }
)
# fmt: on

_BEN43_KINDS: Final = (
    "dense_urban", "suburban", "industrial", "road_rail", "port", "airport", "mineral_extraction", "dump",
    "construction", "green_urban", "sport", "arable", "irrigated", "rice", "vineyard", "orchard", "olive",
    "pasture", "annual_permanent", "complex_cultivation", "agri_natural", "agroforestry", "broadleaf_forest",
    "coniferous_forest", "mixed_forest", "natural_grassland", "moors_heath", "sclerophyllous",
    "transitional_woodland", "beach_sand", "bare_rock", "sparse_vegetation", "burnt", "inland_marsh", "peatbog",
    "salt_marsh", "salines", "intertidal", "water_course", "water_body", "lagoon", "estuary", "sea",
)  # fmt: skip
_IGBP17_KINDS: Final = (
    "coniferous_forest", "evergreen_broadleaf_forest", "deciduous_needleleaf_forest", "broadleaf_forest",
    "mixed_forest", "sclerophyllous", "open_shrubland", "agroforestry", "savanna", "natural_grassland",
    "inland_marsh", "arable", "suburban", "agri_natural", "snow_ice", "bare_rock", "water_body",
)  # fmt: skip


@dataclass(frozen=True)
class EuroSatRecipe:
    """How a EuroSAT image of one class is composed: main kinds (one drawn per image) over background kinds.

    The main kind covers ``cover`` (min, max) of the image; linear main kinds are strips whatever ``cover``.
    """

    main: tuple[str, ...]
    background: tuple[str, ...]
    cover: tuple[float, float]


#: EuroSAT class -> recipe. Classes are single-label, but images are mixed as the real ones are.
EUROSAT_RECIPES: Final = MappingProxyType(
    {
        "AnnualCrop": EuroSatRecipe(("arable",), ("pasture", "natural_grassland", "suburban"), (0.75, 1.0)),
        "Forest": EuroSatRecipe(("broadleaf_forest", "coniferous_forest", "mixed_forest"), ("transitional_woodland",), (0.8, 1.0)),
        "HerbaceousVegetation": EuroSatRecipe(("natural_grassland",), ("transitional_woodland", "sparse_vegetation", "pasture"), (0.65, 1.0)),
        "Highway": EuroSatRecipe(("road_rail",), ("arable", "pasture", "natural_grassland", "suburban", "broadleaf_forest"), (0.0, 0.0)),
        "Industrial": EuroSatRecipe(("industrial",), ("suburban", "road_rail", "natural_grassland"), (0.65, 1.0)),
        "Pasture": EuroSatRecipe(("pasture",), ("natural_grassland", "broadleaf_forest", "arable"), (0.7, 1.0)),
        "PermanentCrop": EuroSatRecipe(("vineyard", "orchard", "olive"), ("arable", "natural_grassland"), (0.65, 1.0)),
        "Residential": EuroSatRecipe(("suburban", "dense_urban"), ("pasture", "broadleaf_forest"), (0.7, 1.0)),
        "River": EuroSatRecipe(("water_course",), ("pasture", "arable", "broadleaf_forest", "natural_grassland", "inland_marsh"), (0.0, 0.0)),
        "SeaLake": EuroSatRecipe(("water_body", "sea"), ("beach_sand", "broadleaf_forest", "natural_grassland"), (0.6, 1.0)),
    }
)  # fmt: skip

#: Class set name -> {class name -> kind}. EuroSAT maps to its recipe's main kinds (see EUROSAT_RECIPES).
CLASS_KINDS: Final = MappingProxyType(
    {
        "ben43": MappingProxyType(dict(zip(contract.BEN43, _BEN43_KINDS, strict=True))),
        "igbp17": MappingProxyType(dict(zip(contract.IGBP17, _IGBP17_KINDS, strict=True))),
        "eurosat10": MappingProxyType({c: EUROSAT_RECIPES[c].main for c in contract.EUROSAT_CLASSES}),
    }
)


def _wavelengths(bands: Sequence[str]) -> np.ndarray:
    out = []
    for name in bands:
        nm = contract.band(name).wavelength_nm
        if nm is None:
            raise contract.ContractError(f"band {name} has no wavelength; it is not an optical band")
        out.append(nm)
    return np.asarray(out, dtype=np.float64)


def material_curve(material: str, bands: Sequence[str]) -> np.ndarray:
    """Surface reflectance (x 10,000) of ``material`` at each band's central wavelength (linear in between)."""
    return np.interp(_wavelengths(bands), ANCHOR_NM, MATERIALS[material][0])


@functools.lru_cache(maxsize=256)
def kind_signature(kind: str, bands: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The two material curves ``(a, b)`` of ``kind`` at ``bands`` (float64 [C] each), cached."""
    k = KINDS[kind]
    return material_curve(k.a, bands), material_curve(k.b, bands)


def kind_s1(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(VV, VH) backscatter in dB of the two materials of ``kind``: arrays ``a`` and ``b`` of shape [2]."""
    k = KINDS[kind]
    return np.asarray(MATERIALS[k.a][1]), np.asarray(MATERIALS[k.b][1])


#: Relative transmittance of L1C (TOA) vs surface: water vapour (B09) and cirrus (B10) absorption.
_TOA_NM: Final = (443, 900, 945, 1000, 1300, 1375, 1450, 1610)
_TOA_T: Final = (1.0, 1.0, 0.27, 0.95, 0.9, 0.004, 0.9, 1.0)


def atmosphere(bands: Sequence[str], level: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (transmittance, mean path-radiance offset) of a processing ``level`` ("L1C" or "L2A").

    L2A is surface reflectance (transmittance 1, a small residual haze offset). L1C adds Rayleigh-like path
    radiance ``750 (443/lambda)^6`` and the absorption bands; per-patch jitter is applied by the scene.
    """
    nm = _wavelengths(bands)
    if level == "L2A":
        return np.ones_like(nm), 40.0 * (443.0 / nm) ** 4
    if level == "L1C":
        return np.interp(nm, _TOA_NM, _TOA_T), 750.0 * (443.0 / nm) ** 6
    raise ValueError(f"level must be L1C or L2A, not {level!r}")
