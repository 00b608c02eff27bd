"""Scene inputs of every kind, opened as one :class:`Scene`: band files by name, offsets, SCL, one grid.

Accepted inputs (all read through rasterio/GDAL, windowed):

* a Sentinel-2 L2A ``.SAFE`` folder or its ``.zip`` (:mod:`landzoo.mapping.product`);
* a folder of single-band GeoTIFF/COG (or JP2) files named by band: ``B02.tif``, ``*_B02.tif``,
  ``*_B02_10m.tif`` (as cloud archives and STAC catalogues serve them), optionally with ``SCL`` and the
  product's ``MTD_MSIL2A.xml`` (or ``product_metadata.xml``) beside them for the offsets;
* one multi-band GeoTIFF whose bands are named by ``--bands B02,B03,...`` or by their band descriptions.

Bands are matched by NAME to the checkpoint's data contract, and each is read on its native grid (10 m bands
at 10 m, 20 m bands at 20 m), exactly as BigEarthNet stores them. A file finer than a band's native
resolution (a 20 m band in a 10 m multi-band stack) is read with GDAL's average resampling onto the native
grid, which is what a 20 m detector integrates; a coarser file is refused (it cannot be what the model saw).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landzoo import contract
from landzoo.mapping.errors import MapError, gdal_reason
from landzoo.mapping.product import MTD_NAMES, SCL, ProductMetadata, SafeProduct, open_safe, parse_mtd, verify

__all__ = ["BandFile", "Layer", "Scene", "SceneGrid", "open_scene", "scene_stem"]

_FOLDER_FILE = re.compile(r"(?:^|_)(B\d\d|B8A|SCL)(?:_(\d+)m)?\.(?:tif|tiff|jp2)$", re.IGNORECASE)
_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class BandFile:
    """One band in one file: what GDAL opens, what messages name, the band index, the resolution its name says."""

    band: str
    path: str
    display: str
    index: int = 1
    res_hint: int | None = None


@dataclass(frozen=True)
class Layer:
    """A band as the reader reads it: native grid ``gsd`` m, ``factor`` file pixels per native pixel side."""

    band: str
    file: BandFile
    gsd: int
    factor: int
    nodata: float | None
    offset: float


@dataclass(frozen=True)
class SceneGrid:
    """The scene's common grid: CRS, upper-left corner (m) and extent (m) shared by every layer."""

    crs: Any
    origin: tuple[float, float]
    width_m: int
    height_m: int


@dataclass
class Scene:
    """A scene input: its name (the output stem), kind, band files by band name and where offsets come from."""

    name: str
    kind: str
    path: Path
    files: dict[str, list[BandFile]]
    metadata: ProductMetadata | None = None
    offset_source: str = "none"
    notes: list[str] = field(default_factory=list)
    product: SafeProduct | None = None

    def verify(self, layers: Sequence[Layer], *, progress: bool = False) -> dict[str, Any]:
        """Check the files of ``layers`` against the product's ``manifest.safe`` (sizes and checksums)."""
        if self.product is None:
            return {"manifest": None, "checked": 0, "note": f"a {self.kind} carries no checksums"}
        return verify(self.product, sorted({la.file.path for la in layers}), progress=progress)

    def offsets(self, override: float | None) -> dict[str, float]:
        """Radiometric offset per band (added to raw values): ``override`` for all, else the product's."""
        if override is not None:
            return dict.fromkeys(self.files, float(override))
        return dict((self.metadata.offsets if self.metadata else {}) or {})

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "path": str(self.path)}
        if self.metadata is not None:
            out["product"] = self.metadata.to_dict()
        return out

    # ---- layers -------------------------------------------------------------------------------------
    def _choose(self, band: str, native: int) -> BandFile:
        cands = self.files.get(band, [])
        where = f"scene {self.path}"
        if not cands:
            hint = "" if band != SCL else " (--mask-clouds needs the L2A scene classification layer)"
            raise MapError(f"{where} has no band {band}{hint}; it holds {', '.join(sorted(self.files)) or 'no bands'}")
        for pick in ([c for c in cands if c.res_hint == native], [c for c in cands if c.res_hint is None]):
            if len(pick) == 1:
                return pick[0]
            if len(pick) > 1:
                raise MapError(f"{where}: band {band} is in several files: {', '.join(c.display for c in pick)}")
        finer = sorted((c for c in cands if c.res_hint is not None and c.res_hint < native), key=lambda c: c.res_hint)
        if finer:  # e.g. a 20 m band resampled to 10 m: averaged back onto its native grid when read
            return finer[-1]
        found = ", ".join(f"{c.res_hint} m" for c in cands)
        raise MapError(
            f"{where} holds band {band} only at {found}, not at its native {native} m "
            "(a 20 m-only product?): the model saw it at native resolution"
        )

    def layers(
        self, bands: Sequence[str], *, scl: bool = False, offset: float | None = None
    ) -> tuple[list[Layer], Layer | None, SceneGrid]:
        """Open the files of ``bands`` (and SCL), check they share one grid; the layers and that grid."""
        import rasterio
        from rasterio.errors import RasterioError

        offsets = self.offsets(offset)
        wanted = [(b, contract.band(b).gsd_m) for b in bands] + ([(SCL, 20)] if scl else [])
        opened: list[tuple[str, BandFile, Any, int]] = []
        for band, native in wanted:
            bf = self._choose(band, native)
            try:
                with rasterio.open(bf.path) as ds:
                    info = (ds.crs, ds.transform, ds.width, ds.height, ds.count, ds.nodatavals, ds.dtypes)
            except RasterioError as err:
                raise MapError(f"cannot open {bf.display} (band {band}): {gdal_reason(err)}") from None
            opened.append((band, bf, info, native))
        crs0 = None
        origin0: tuple[float, float] | None = None
        width_m = height_m = math.inf
        layers: list[Layer] = []
        scl_layer = None
        for band, bf, (crs, tr, w, h, count, nodatas, dtypes), native in opened:
            if bf.index > count:
                raise MapError(f"{bf.display} has {count} band(s); band {band} was said to be band {bf.index}")
            if crs is None or not crs.is_projected or abs(crs.linear_units_factor[1] - 1.0) > 1e-12:
                raise MapError(f"{bf.display} (band {band}) is not in a projected CRS in metres (got {crs})")
            if tr.b != 0 or tr.d != 0 or tr.a <= 0 or tr.e >= 0 or abs(tr.a + tr.e) > 1e-9 * tr.a:
                raise MapError(f"{bf.display} (band {band}) has no north-up square pixel grid ({tuple(tr)[:6]})")
            res = tr.a
            if band == SCL:
                native = round(res)
            factor = native / res
            if res > native + 1e-9 or abs(factor - round(factor)) > 1e-9:
                raise MapError(
                    f"{bf.display}: band {band} has {res:g} m pixels; the model takes it at its native {native} m "
                    "(a coarser or non-dividing resolution cannot be what it was trained on)"
                )
            if crs0 is None:
                crs0, origin0 = crs, (tr.c, tr.f)
            elif crs != crs0:
                raise MapError(f"{bf.display} (band {band}) is in {crs}, the other bands in {crs0}")
            elif origin0 is not None and (abs(tr.c - origin0[0]) > 1e-6 or abs(tr.f - origin0[1]) > 1e-6):
                raise MapError(
                    f"{bf.display} (band {band}) starts at ({tr.c}, {tr.f}), the other bands at {origin0}: "
                    "the bands do not share one grid"
                )
            width_m, height_m = min(width_m, w * res), min(height_m, h * res)
            nd = nodatas[bf.index - 1]
            nodata = self.metadata.nodata if self.metadata is not None else (0.0 if nd is None else float(nd))
            layer = Layer(band, bf, int(native), round(factor), nodata, float(offsets.get(band, 0.0)))
            if band == SCL:
                scl_layer = layer
            else:
                if not dtypes[bf.index - 1].startswith(("uint", "int")):
                    raise MapError(f"{bf.display}: band {band} holds {dtypes[bf.index - 1]}, not integer DNs")
                layers.append(layer)
        assert crs0 is not None and origin0 is not None
        coarsest = max(la.gsd for la in [*layers, *([scl_layer] if scl_layer else [])])
        grid = SceneGrid(
            crs0,
            origin0,
            int(math.floor(width_m / coarsest + 1e-9) * coarsest),
            int(math.floor(height_m / coarsest + 1e-9) * coarsest),
        )
        return layers, scl_layer, grid


# --------------------------------------------------------------------------------------------------
# opening each kind of input
# --------------------------------------------------------------------------------------------------


def _metadata_beside(folder: Path) -> ProductMetadata | None:
    for name in MTD_NAMES:
        p = folder / name
        if p.is_file():
            try:
                return parse_mtd(p.read_bytes(), str(p))
            except OSError as err:
                raise MapError(f"cannot read {p}: {err.strerror or err}") from None
    return None


def _offset_note(meta: ProductMetadata | None, override: float | None) -> str:
    if override is not None:
        return f"--offset {override:g} for every band"
    if meta is None:
        return "none (no product metadata beside the bands; pass --offset if values carry sen2cor's +1000)"
    if not meta.offsets:
        return f"none: {meta.source} (baseline {meta.baseline}) has no BOA_ADD_OFFSET"
    return f"BOA_ADD_OFFSET of {meta.source} (baseline {meta.baseline})"


def _open_folder(path: Path) -> Scene:
    files: dict[str, list[BandFile]] = {}
    try:
        names = sorted(os.listdir(path))
    except OSError as err:
        raise MapError(f"cannot list {path}: {err.strerror or err}") from None
    for name in names:
        m = _FOLDER_FILE.search(name)
        if not m or not (path / name).is_file():
            continue
        band = m.group(1).upper()
        res = int(m.group(2)) if m.group(2) else None
        files.setdefault(band, []).append(BandFile(band, str(path / name), str(path / name), 1, res))
    if not files:
        raise MapError(
            f"folder {path} holds no band files (B02.tif, *_B02.tif, *_B02_10m.tif, ...) and no MTD_MSIL2A.xml"
        )
    return Scene(path.name, "band folder", path, files, _metadata_beside(path))


def _open_multiband(path: Path, bands: Sequence[str] | None) -> Scene:
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as ds:
            count, descriptions = ds.count, ds.descriptions
    except RasterioError as err:
        raise MapError(f"cannot open {path}: {gdal_reason(err)}") from None
    if bands is None:
        described = [(d or "").strip().upper() for d in descriptions]
        if all(d in contract.BANDS for d in described):
            bands = described
        else:
            raise MapError(
                f"{path} is one multi-band file whose bands are not named by their descriptions; "
                f"give their names in file order with --bands B02,B03,... ({count} bands)"
            )
    names = contract.resolve_bands(list(bands))
    if len(names) != count:
        raise MapError(f"--bands names {len(names)} bands but {path} has {count}")
    files = {b: [BandFile(b, str(path), f"{path} (band {i} = {b})", i, None)] for i, b in enumerate(names, 1)}
    return Scene(path.stem, "multi-band GeoTIFF", path, files, None)


def scene_stem(path: str | os.PathLike) -> str:
    """The name a scene's outputs are called by: the product name (no ``.zip``/``.SAFE``), folder or file stem."""
    path = Path(path)
    name = path.name
    for suffix in (".zip", ".SAFE"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name == path.name and path.suffix.lower() in _SUFFIXES:
        name = path.stem
    return name


def open_scene(path: str | os.PathLike, *, bands: Sequence[str] | None = None, offset: float | None = None) -> Scene:
    """Open one scene input of any accepted kind (see the module docstring); nothing is read but headers."""
    path = Path(path)
    if not path.exists():
        raise MapError(f"scene {path} does not exist")
    if bands is not None and not (path.is_file() and path.suffix.lower() in _SUFFIXES):
        raise MapError(f"--bands names the bands of one multi-band GeoTIFF; {path} is not a .tif file")
    is_safe = path.is_dir() and (path.suffix == ".SAFE" or (path / "GRANULE").is_dir())
    if is_safe or (path.is_file() and path.suffix.lower() == ".zip"):
        product = open_safe(path)
    elif path.is_dir():
        scene = _open_folder(path)
        scene.offset_source = _offset_note(scene.metadata, offset)
        return scene
    elif path.is_file() and path.suffix.lower() in _SUFFIXES:
        scene = _open_multiband(path, bands)
        scene.offset_source = _offset_note(None, offset)
        return scene
    else:
        raise MapError(f"scene {path} is neither a .SAFE folder, a .zip product, a folder of band files nor a GeoTIFF")
    files: dict[str, list[BandFile]] = {}
    for (band, res), gdal_path in sorted(product.files.items()):
        files.setdefault(band, []).append(BandFile(band, gdal_path, product.display[f"{band}_{res}m"], 1, res))
    scene = Scene(product.name, product.kind, path, files, product.metadata, product=product)
    scene.offset_source = _offset_note(product.metadata, offset)
    return scene
