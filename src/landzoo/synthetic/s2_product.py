"""``landzoo generate s2-scene``: a synthetic Sentinel-2 L2A product in the real formats, with a learnable signal.

What is written under ``OUT`` (pixels from :mod:`landzoo.synthetic.s2_scene`):

* ``<product>.SAFE/``: ``MTD_MSIL2A.xml`` (processing baseline, ``BOA_ADD_OFFSET`` -1000 per band from
  baseline 04.00, quantification 10000, NODATA special value 0, spectral band ids, the granule's image files),
  ``GRANULE/L2A_<tile>_A<orbit>_<time>/MTD_TL.xml`` (CRS and tile geometry) and
  ``IMG_DATA/R10m|R20m|R60m/<tile>_<time>_<band>_<res>m.jp2``: real JPEG 2000 files written by GDAL's
  JP2OpenJPEG driver (lossless, 1024 px tiles, GMLJP2 georeferencing) in WGS 84 / UTM, the 10 m bands at 10 m,
  the 20 m bands (and B02/B03/B04 averaged) at 20 m, B01/B09 at 60 m, and SCL at 20 m and 60 m;
* ``<product>_tif/``: the same scene as one Cloud-Optimised GeoTIFF per band at its native resolution
  (``<tile>_<time>_B02_10m.tif``, DEFLATE, 1024 px blocks, nodata 0, as cloud archives serve L2A), its SCL and a
  copy of ``MTD_MSIL2A.xml`` (the offsets travel with the values);
* optionally ``<product>.zip``: the ``.SAFE`` folder zipped, as the Copernicus hub delivers it;
* ``<product>_truth.json``: the BigEarthNet-19 labels of every 1200 m cell of the grid (not part of a product).

Values are stored as a product of the given baseline stores them: the surface DN plus 1000 from 04.00 on,
0 in the empty corner. The scene's upper-left corner is the tile's (:func:`landzoo.synthetic.geo.mgrs_tile_origin`).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import zipfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.synthetic import GenerateError, geo, s2_scene
from landzoo.synthetic.s2_scene import SceneSpec
from landzoo.synthetic.tiff import utm_epsg

__all__ = ["PRODUCT_FILES", "ScenePaths", "generate_s2_scene", "product_names"]

#: Band files of the product per resolution (m), as an L2A product holds them (AOT/WVP/TCI left out).
PRODUCT_FILES: dict[int, tuple[str, ...]] = {
    10: ("B02", "B03", "B04", "B08"),
    20: ("B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12", "SCL"),
    60: ("B01", "B09", "SCL"),
}
_OFFSET = 1000
_JP2 = {"QUALITY": "100", "REVERSIBLE": "YES", "BLOCKXSIZE": "1024", "BLOCKYSIZE": "1024", "YCC": "NO"}
_COG = {"COMPRESS": "DEFLATE", "PREDICTOR": "YES", "BLOCKSIZE": "1024"}


@dataclass(frozen=True)
class ScenePaths:
    """What :func:`generate_s2_scene` wrote."""

    product: str
    safe: Path | None
    tif: Path | None
    zip: Path | None
    truth: Path


def product_names(tile: str, satellite: str, when: datetime, baseline: str) -> dict[str, str]:
    """Product, granule and file-prefix names of an L2A product, as ESA forms them."""
    stamp = when.strftime("%Y%m%dT%H%M%S")
    digest = int(hashlib.sha256(f"{tile}{satellite}{stamp}{baseline}".encode()).hexdigest()[:8], 16)
    generated = (when + timedelta(seconds=9000 + digest % 5400)).strftime("%Y%m%dT%H%M%S")
    absolute = 30000 + digest % 10000
    orbit = geo.relative_orbit(satellite, when)
    code = "N" + baseline.replace(".", "")
    return {
        "product": f"{satellite}_MSIL2A_{stamp}_{code}_R{orbit:03d}_{tile}_{generated}",
        "granule": f"L2A_{tile}_A{absolute:06d}_{(when + timedelta(seconds=438)).strftime('%Y%m%dT%H%M%S')}",
        "prefix": f"{tile}_{stamp}",
        "generated": generated,
        "orbit": str(orbit),
    }


def _has_offset(baseline: str) -> bool:
    try:
        return float(baseline) >= 4.0
    except ValueError:
        raise GenerateError(f"processing baseline {baseline!r} is not a number like 05.10") from None


def _mtd(names: dict[str, str], tile: str, satellite: str, when: datetime, baseline: str, files: list[str]) -> str:
    """``MTD_MSIL2A.xml`` with the elements a reader of the values needs, in the PSD-14 layout."""
    bands = contract.S2_L1C_BANDS  # ESA's band ids 0..12 follow this order (B8A after B08)
    spectral = "\n".join(
        f'        <Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}">'
        f"<RESOLUTION>{contract.band(b).gsd_m}</RESOLUTION></Spectral_Information>"
        for i, b in enumerate(bands)
    )
    offsets = ""
    if _has_offset(baseline):
        rows = "\n".join(
            f'        <BOA_ADD_OFFSET band_id="{i}">-{_OFFSET}</BOA_ADD_OFFSET>' for i in range(len(bands))
        )
        offsets = f"      <BOA_ADD_OFFSET_VALUES_LIST>\n{rows}\n      </BOA_ADD_OFFSET_VALUES_LIST>\n"
    images = "\n".join(f"              <IMAGE_FILE>{f}</IMAGE_FILE>" for f in files)
    scl = "\n".join(
        f"        <Scene_Classification_ID><SCL_TEXT>SC_{t.upper().replace(' ', '_')}</SCL_TEXT>"
        f"<SCL_INDEX>{i}</SCL_INDEX></Scene_Classification_ID>"
        for i, t in _scl_classes().items()
    )
    start = when.strftime("%Y-%m-%dT%H:%M:%S.024Z")
    stop = (when + timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.024Z")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>
      <PRODUCT_STOP_TIME>{stop}</PRODUCT_STOP_TIME>
      <PRODUCT_URI>{names["product"]}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>Level-2A</PROCESSING_LEVEL>
      <PRODUCT_TYPE>S2MSI2A</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>{datetime.strptime(names["generated"], "%Y%m%dT%H%M%S").strftime("%Y-%m-%dT%H:%M:%S.000000Z")}</GENERATION_TIME>
      <Datatake datatakeIdentifier="GS2{satellite[-1]}_{when.strftime("%Y%m%dT%H%M%S")}_000000_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-2{satellite[-1]}</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <DATATAKE_SENSING_START>{start}</DATATAKE_SENSING_START>
        <SENSING_ORBIT_NUMBER>{names["orbit"]}</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Product_Organisation>
        <Granule_List>
          <Granule datastripIdentifier="S2{satellite[-1]}_OPER_MSI_L2A_DS_{names["generated"]}_N{baseline}" granuleIdentifier="S2{satellite[-1]}_OPER_MSI_L2A_TL_{names["generated"]}_{tile}_N{baseline}" imageFormat="JPEG2000">
{images}
          </Granule>
        </Granule_List>
      </Product_Organisation>
    </Product_Info>
    <Product_Image_Characteristics>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <Special_Values>
        <SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>
        <SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX>
      </Special_Values>
      <QUANTIFICATION_VALUES_LIST>
        <BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>
        <AOT_QUANTIFICATION_VALUE unit="none">1000.0</AOT_QUANTIFICATION_VALUE>
        <WVP_QUANTIFICATION_VALUE unit="cm">1000.0</WVP_QUANTIFICATION_VALUE>
      </QUANTIFICATION_VALUES_LIST>
{offsets}      <Spectral_Information_List>
{spectral}
      </Spectral_Information_List>
      <Scene_Classification_List>
{scl}
      </Scene_Classification_List>
    </Product_Image_Characteristics>
  </n1:General_Info>
</n1:Level-2A_User_Product>
"""


def _manifest(safe: Path) -> str:
    """``manifest.safe``: every file of the product with its size and MD5, as ESA's XFDU manifest lists them."""
    objects = []
    for i, path in enumerate(sorted(p for p in safe.rglob("*") if p.is_file() and p.name != "manifest.safe")):
        data = path.read_bytes()
        mime = "text/xml" if path.suffix == ".xml" else "application/octet-stream"
        objects.append(
            f'    <dataObject ID="{path.stem}_{i}">\n      <byteStream mimeType="{mime}" size="{len(data)}">\n'
            f'        <fileLocation locatorType="URL" href="./{path.relative_to(safe).as_posix()}"/>\n'
            f'        <checksum checksumName="MD5">{hashlib.md5(data).hexdigest()}</checksum>\n'
            "      </byteStream>\n    </dataObject>"
        )
    body = "\n".join(objects)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" xmlns:safe="http://www.esa.int/safe/sentinel/1.1" version="esa/safe/sentinel/1.1/sentinel-2/msi/archive_l2a_user_product">
  <dataObjectSection>
{body}
  </dataObjectSection>
</xfdu:XFDU>
"""


def _scl_classes() -> dict[int, str]:
    return dict(contract.SCL_CLASSES)


def _mtd_tl(tile: str, size_px: int, origin: tuple[int, int]) -> str:
    zone = int(tile[1:3])
    sizes = "\n".join(
        f'        <Size resolution="{r}"><NROWS>{size_px * 10 // r}</NROWS><NCOLS>{size_px * 10 // r}</NCOLS></Size>'
        for r in (10, 20, 60)
    )
    positions = "\n".join(
        f'        <Geoposition resolution="{r}"><ULX>{origin[0]}</ULX><ULY>{origin[1]}</ULY>'
        f"<XDIM>{r}</XDIM><YDIM>-{r}</YDIM></Geoposition>"
        for r in (10, 20, 60)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_Tile_ID xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-2A_Tile_Metadata.xsd">
  <n1:Geometric_Info>
    <Tile_Geocoding metadataLevel="Brief">
      <HORIZONTAL_CS_NAME>WGS84 / UTM zone {zone}N</HORIZONTAL_CS_NAME>
      <HORIZONTAL_CS_CODE>EPSG:{32600 + zone}</HORIZONTAL_CS_CODE>
{sizes}
{positions}
    </Tile_Geocoding>
  </n1:Geometric_Info>
</n1:Level-2A_Tile_ID>
"""


# --------------------------------------------------------------------------------------------------
# rendering rows of cells in worker processes
# --------------------------------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init(spec: SceneSpec, regions: np.ndarray) -> None:
    _WORKER["spec"], _WORKER["regions"] = spec, regions
    _WORKER["bank"] = s2_scene.scene.Bank(spec.seed)


def _render(row: int) -> dict[str, Any]:
    return s2_scene.render_row(_WORKER["spec"], _WORKER["regions"], row, _WORKER["bank"])


def _rows(spec: SceneSpec, regions: np.ndarray, workers: int) -> Iterator[dict[str, Any]]:
    if workers <= 1:
        _init(spec, regions)
        for row in range(spec.cells):
            yield _render(row)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    ctx = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(spec, regions)) as pool:
        yield from pool.map(_render, range(spec.cells))


def _each(fn: Any, items: list[Any], workers: int, what: str, progress: bool) -> None:
    """``fn`` over ``items`` in ``workers`` threads (GDAL encodes without the GIL), with a progress bar."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    with tqdm(total=len(items), desc=what, disable=not progress) as bar, ThreadPoolExecutor(max(1, workers)) as pool:
        for _ in pool.map(fn, items):
            bar.update(1)


def _average2(arr: np.ndarray) -> np.ndarray:
    """A 10 m band on the 20 m grid: the mean of each 2 x 2 block, rounded (what R20m's B02/B03/B04 hold)."""
    return np.rint(s2_scene.scene.area_average(arr.astype(np.float32), 2)).astype(np.uint16)


def generate_s2_scene(
    out: str | Path,
    *,
    size_km: float = 6.0,
    seed: int = 0,
    tile: str = "T32TNS",
    satellite: str = "S2B",
    when: datetime = datetime(2024, 6, 12, 10, 25, 59),
    baseline: str = "05.10",
    clouds: float = 0.0,
    nodata_corner: float = 0.1,
    tif: bool = True,
    jp2: bool = True,
    zip_product: bool = False,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> ScenePaths:
    """Write a synthetic L2A product (and its GeoTIFF twin) under ``out``; see the module docstring."""
    import rasterio
    import rasterio.errors
    import rasterio.shutil
    from affine import Affine
    from rasterio._err import CPLE_BaseError
    from tqdm.auto import tqdm

    size_px = round(size_km * 100)
    if abs(size_px - size_km * 100) > 1e-6 or size_px % 6 or size_px < 120:
        raise GenerateError(f"--size-km {size_km}: use at least 1.2 km in steps of 0.06 km (the 60 m grid)")
    if not (jp2 or tif):
        raise GenerateError("nothing to write: neither the .SAFE (JP2) nor the band COGs")
    if zip_product and not jp2:
        raise GenerateError("--zip zips the .SAFE, which --no-jp2 leaves out")
    if not 0 <= clouds < 1 or not 0 <= nodata_corner < 0.5:
        raise GenerateError("--clouds must be in [0, 1) and --nodata-corner in [0, 0.5)")
    if satellite not in ("S2A", "S2B", "S2C"):
        raise GenerateError(f"satellite {satellite!r}: S2A, S2B or S2C")
    try:
        origin = geo.mgrs_tile_origin(tile)
    except (ValueError, IndexError, StopIteration):
        raise GenerateError(f"{tile!r} is not a Sentinel-2 tile name like T32TNS") from None
    names = product_names(tile, satellite, when, baseline)
    out = Path(out)
    product = names["product"]
    outputs = [f"{product}.SAFE", f"{product}_tif", f"{product}.zip", f"{product}_truth.json", f".{product}.staging"]
    if not overwrite and any((out / o).exists() for o in outputs):
        raise GenerateError(f"{out} already holds {product}; pass --overwrite to replace it")
    for o in outputs:
        p = out / o
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    spec = SceneSpec(size_px, seed, clouds, nodata_corner)
    offset = _OFFSET if _has_offset(baseline) else 0
    safe = out / f"{product}.SAFE"
    img = safe / "GRANULE" / names["granule"] / "IMG_DATA"
    staging = out / f".{product}.staging"
    staging.mkdir(parents=True)
    crs = f"EPSG:{utm_epsg(int(tile[1:3]))}"
    files: dict[tuple[int, str], Any] = {}
    try:
        for res, bands in PRODUCT_FILES.items():
            side = size_px * 10 // res
            for band in bands:
                files[(res, band)] = rasterio.open(
                    staging / f"{band}_{res}m.tif", "w", driver="GTiff", width=side, height=side, count=1,
                    dtype="uint8" if band == "SCL" else "uint16", crs=crs, nodata=0, tiled=True,
                    transform=Affine(res, 0, origin[0], 0, -res, origin[1]),
                )  # fmt: skip
        regions = s2_scene.landscape(spec)
        cloud = s2_scene.cloud_field(spec)
        truth: list[dict[str, Any]] = []
        bar = tqdm(total=spec.cells, desc="rendering cells", unit="row", disable=not progress)
        with bar:
            for row, rendered in enumerate(_rows(spec, regions, workers)):
                truth += rendered["labels"]
                _write_row(spec, cloud, rendered["bands"], row, files, offset)
                bar.update(1)
        for ds in files.values():
            ds.close()
        # the product: JPEG 2000 files in the SAFE layout (GDAL encodes; one thread per file)
        members = [
            (img / f"R{res}m" / f"{names['prefix']}_{band}_{res}m").relative_to(safe).as_posix() for res, band in files
        ]
        mtd = _mtd(names, tile, satellite, when, baseline, members)
        if jp2:

            def to_jp2(key: tuple[int, str]) -> None:
                res, band = key
                target = img / f"R{res}m" / f"{names['prefix']}_{band}_{res}m.jp2"
                with rasterio.Env(GDAL_PAM_ENABLED="NO"):  # no .aux.xml beside the JP2s: ESA writes none
                    rasterio.shutil.copy(files[key].name, target, driver="JP2OpenJPEG", **_JP2)

            for res in PRODUCT_FILES:
                (img / f"R{res}m").mkdir(parents=True, exist_ok=True)
            _each(to_jp2, list(files), workers, "writing JP2", progress)
            (safe / "MTD_MSIL2A.xml").write_text(mtd, encoding="utf-8")
            (img.parent / "MTD_TL.xml").write_text(_mtd_tl(tile, size_px, origin), encoding="utf-8")
            (safe / "manifest.safe").write_text(_manifest(safe), encoding="utf-8")
        tif_dir = None
        if tif:
            tif_dir = out / f"{product}_tif"
            tif_dir.mkdir()
            native = [(r, b) for r, b in files if r == (20 if b == "SCL" else contract.band(b).gsd_m)]

            def to_cog(key: tuple[int, str]) -> None:
                res, band = key
                target = tif_dir / f"{names['prefix']}_{band}_{res}m.tif"
                rasterio.shutil.copy(files[key].name, target, driver="COG", **_COG)

            _each(to_cog, native, workers, "writing COG", progress)
            (tif_dir / "MTD_MSIL2A.xml").write_text(mtd, encoding="utf-8")
        zip_path = None
        if zip_product:
            zip_path = out / f"{product}.zip"
            with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
                for p in sorted(safe.rglob("*")):
                    if p.is_file():
                        zf.write(p, f"{product}.SAFE/{p.relative_to(safe).as_posix()}")
        truth_path = out / f"{product}_truth.json"
        doc = {
            "product": product,
            "crs": crs,
            "origin": list(origin),
            "cell_m": contract.BEN_PATCH_METRES,
            "size_m": size_px * 10,
            "seed": seed,
            "clouds": clouds,
            "nodata_corner": nodata_corner,
            "baseline": baseline,
            "offset_in_values": offset,
            "cells": truth,
        }
        truth_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    except OSError as err:
        raise GenerateError(f"cannot write the scene under {out}: {err}") from None
    except (rasterio.errors.RasterioError, rasterio.errors.DriverRegistrationError, CPLE_BaseError) as err:  # GDAL
        raise GenerateError(f"cannot write the scene under {out}: {type(err).__name__}: {err}") from None
    finally:
        for ds in files.values():
            if not ds.closed:
                ds.close()
        shutil.rmtree(staging, ignore_errors=True)
    return ScenePaths(product, safe if jp2 else None, tif_dir, zip_path, truth_path)


def _write_row(
    spec: SceneSpec,
    cloud: np.ndarray | None,
    bands: dict[str, np.ndarray],
    row: int,
    files: dict[tuple[int, str], Any],
    offset: int,
) -> None:
    """One row of cells into the staging files: clouds, SCL, nodata corner and the product's offset."""
    from rasterio.windows import Window

    by_res: dict[int, dict[str, np.ndarray]] = {}
    for name, arr in bands.items():
        by_res.setdefault(contract.band(name).gsd_m, {})[name] = arr
    done: dict[int, dict[str, np.ndarray]] = {}
    alpha20 = shadow20 = None
    for res, group in by_res.items():
        y0 = row * contract.BEN_PATCH_METRES // res
        group, alpha, shadow = s2_scene.apply_atmosphere(spec, cloud, group, y0, res)
        done[res] = dict(group)
        if res == 20:
            alpha20, shadow20 = alpha, shadow
    for b in ("B02", "B03", "B04"):
        done[20][b] = _average2(done[10][b])
    assert alpha20 is not None and shadow20 is not None
    scl20 = s2_scene.scene_classification(done[20], alpha20, shadow20)
    done[20]["SCL"] = scl20
    done[60]["SCL"] = np.ascontiguousarray(scl20[1::3, 1::3])
    for (res, band), ds in files.items():
        arr = done[res][band]
        y0 = row * contract.BEN_PATCH_METRES // res
        h = min(arr.shape[0], ds.height - y0)
        if h <= 0:
            continue
        arr = arr[:h]
        empty = s2_scene.nodata_mask(spec, y0, y0 + h, arr.shape[1], res)
        if band != "SCL" and offset:
            arr = np.minimum(arr.astype(np.uint32) + offset, 65535).astype(np.uint16)
        arr = np.where(empty, 0, arr).astype(arr.dtype)
        ds.write(arr[None], window=Window(0, y0, arr.shape[1], h))
