"""A Sentinel-2 L2A product as downloaded: the ``.SAFE`` folder or its ``.zip``, and ``MTD_MSIL2A.xml``.

Layout (ESA product specification, PSD 14/15)::

    S2B_MSIL2A_20240612T102559_N0510_R108_T32TNS_20240612T131752.SAFE/
        MTD_MSIL2A.xml
        GRANULE/L2A_T32TNS_A037927_20240612T103217/IMG_DATA/R10m/T32TNS_20240612T102559_B02_10m.jp2
                                                           /R20m/..._B05_20m.jp2, ..._SCL_20m.jp2
                                                           /R60m/..._B01_60m.jp2, ...

Why the metadata matters: from processing baseline 04.00 (products from 25 January 2022) every L2A value
carries ``BOA_ADD_OFFSET`` = -1000 (reflectance = (DN + offset) / 10000), while BigEarthNet (2017-2018,
sen2cor 2.x) stores plain reflectance x 10,000. :func:`parse_mtd` reads the offsets per band name (the
``band_id`` attribute is resolved through ``Spectral_Information_List``), the quantification value, the
nodata value and the baseline; the scene reader adds the offsets so values follow the training convention.
A ``.zip`` is read in place through GDAL's ``/vsizip/`` (nothing is unpacked).

Integrity: a JPEG 2000 file damaged in the middle decodes without any error (OpenJPEG fills the damaged code
blocks with noise), so a map made from it would look finished and be wrong. Every product carries
``manifest.safe`` with the size and checksum (MD5, or SHA3-256 in newer products) of each file; :func:`verify`
checks the band files a map reads against it before they are used.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landzoo import contract
from landzoo.mapping.errors import MapError

__all__ = [
    "CLOUD_CLASSES",
    "MTD_NAMES",
    "SCL",
    "SCL_CLASSES",
    "ProductMetadata",
    "SafeProduct",
    "open_safe",
    "parse_manifest",
    "parse_mtd",
    "verify",
]

#: Name of the scene classification layer among the band files.
SCL = "SCL"
#: The L2A scene classification values (sen2cor), from the data contract.
SCL_CLASSES = contract.SCL_CLASSES
#: SCL values that ``--mask-clouds`` counts as cloud: cloud shadows, both cloud probabilities, thin cirrus.
CLOUD_CLASSES = (3, 8, 9, 10)
#: File names under which the product metadata is found (the product's own, and as STAC archives rename it).
MTD_NAMES = ("MTD_MSIL2A.xml", "product_metadata.xml")

_BAND_FILE = re.compile(r"_(B\d\d|B8A|SCL)_(10|20|60)m\.jp2$")


@dataclass(frozen=True)
class ProductMetadata:
    """What ``MTD_MSIL2A.xml`` says about the values: offsets by band name, nodata, baseline, identity."""

    source: str
    product_uri: str | None = None
    baseline: str | None = None
    level: str | None = None
    spacecraft: str | None = None
    sensing_start: str | None = None
    quantification: float | None = None
    offsets: dict[str, float] = field(default_factory=dict)
    nodata: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "metadata_file": self.source,
            "product_uri": self.product_uri,
            "processing_baseline": self.baseline,
            "processing_level": self.level,
            "spacecraft": self.spacecraft,
            "sensing_start": self.sensing_start,
            "boa_quantification_value": self.quantification,
            "boa_add_offset": dict(self.offsets),
            "nodata": self.nodata,
        }


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _band_name(physical: str) -> str | None:
    """``B1`` -> ``B01``, ``B8A`` -> ``B8A``: ESA's spelling in the metadata to the contract's."""
    m = re.fullmatch(r"B(\d{1,2})(A?)", physical.strip())
    if not m:
        return None
    name = "B8A" if m.group(2) else f"B{int(m.group(1)):02d}"
    return name if name in contract.BANDS else None


def parse_mtd(data: bytes, source: str) -> ProductMetadata:
    """Parse ``MTD_MSIL2A.xml`` (any namespace); a malformed file is a :class:`MapError` naming ``source``."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise MapError(f"{source}: not a readable XML file ({err})") from None
    text: dict[str, str] = {}
    band_of_id: dict[str, str] = {}
    raw_offsets: dict[str, float] = {}
    nodata = 0.0
    special: list[tuple[str, str]] = []
    for el in root.iter():
        tag = _local(el.tag)
        if tag == "Spectral_Information" and "bandId" in el.attrib:
            name = _band_name(el.attrib.get("physicalBand", ""))
            if name:
                band_of_id[el.attrib["bandId"]] = name
        elif tag == "BOA_ADD_OFFSET" and "band_id" in el.attrib:
            try:
                raw_offsets[el.attrib["band_id"]] = float((el.text or "").strip())
            except ValueError:
                raise MapError(f"{source}: BOA_ADD_OFFSET of band_id {el.attrib['band_id']} is not a number") from None
        elif tag == "Special_Values":
            kids = {_local(k.tag): (k.text or "").strip() for k in el}
            special.append((kids.get("SPECIAL_VALUE_TEXT", ""), kids.get("SPECIAL_VALUE_INDEX", "")))
        elif len(el) == 0 and el.text and el.text.strip() and tag not in text:
            text[tag] = el.text.strip()
    for name, index in special:
        if name == "NODATA":
            try:
                nodata = float(index)
            except ValueError:
                raise MapError(f"{source}: NODATA special value {index!r} is not a number") from None
    offsets: dict[str, float] = {}
    for band_id, value in raw_offsets.items():
        # ESA numbers the 13 bands 0..12 in the order B1..B8, B8A, B9..B12 (Spectral_Information_List says so)
        name = band_of_id.get(band_id)
        if name is None and band_id.isdigit() and int(band_id) < len(contract.S2_L1C_BANDS):
            name = contract.S2_L1C_BANDS[int(band_id)]
        if name is None:
            raise MapError(f"{source}: BOA_ADD_OFFSET names band_id {band_id!r}, which no spectral band has")
        offsets[name] = value
    quant = text.get("BOA_QUANTIFICATION_VALUE")
    try:
        quantification = float(quant) if quant else None
    except ValueError:
        raise MapError(f"{source}: BOA_QUANTIFICATION_VALUE {quant!r} is not a number") from None
    return ProductMetadata(
        source=source,
        product_uri=text.get("PRODUCT_URI"),
        baseline=text.get("PROCESSING_BASELINE"),
        level=text.get("PROCESSING_LEVEL"),
        spacecraft=text.get("SPACECRAFT_NAME"),
        sensing_start=text.get("PRODUCT_START_TIME") or text.get("DATATAKE_SENSING_START"),
        quantification=quantification,
        offsets=offsets,
        nodata=nodata,
    )


#: manifest.safe checksum names -> hashlib constructors.
_HASHES = {"MD5": hashlib.md5, "SHA3-256": hashlib.sha3_256, "SHA-256": hashlib.sha256, "SHA256": hashlib.sha256}


def parse_manifest(data: bytes, source: str) -> dict[str, tuple[int | None, str | None, str | None]]:
    """``manifest.safe`` -> {member path relative to the product: (size, checksum name, checksum)}."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise MapError(f"{source}: not a readable XML file ({err})") from None
    out: dict[str, tuple[int | None, str | None, str | None]] = {}
    for stream in root.iter():
        if _local(stream.tag) != "byteStream":
            continue
        href = size = algo = digest = None
        for child in stream:
            tag = _local(child.tag)
            if tag == "fileLocation":
                href = child.attrib.get("href")
            elif tag == "checksum":
                algo, digest = child.attrib.get("checksumName"), (child.text or "").strip().lower()
        if href:
            size_text = stream.attrib.get("size")
            size = int(size_text) if size_text and size_text.isdigit() else None
            out[href[2:] if href.startswith("./") else href] = (size, algo, digest)
    return out


@dataclass(frozen=True)
class SafeProduct:
    """The band files of an L2A product by (band, resolution in m), as GDAL paths, and its metadata."""

    name: str
    path: Path
    kind: str
    files: dict[tuple[str, int], str]
    display: dict[str, str]
    metadata: ProductMetadata
    members: dict[str, str] = field(default_factory=dict)
    root: str = ""
    manifest: dict[str, tuple[int | None, str | None, str | None]] | None = None


@contextlib.contextmanager
def _stream(product: SafeProduct, member: str) -> Iterator[tuple[int, Any]]:
    """(size, binary file object) of a member of the product (a file in the folder or in the zip), closed after."""
    if product.kind == "SAFE":
        path = product.path / member
        with open(path, "rb") as fh:
            yield path.stat().st_size, fh
        return
    name = f"{product.root}{member}"
    with zipfile.ZipFile(product.path) as zf, zf.open(name) as fh:
        yield zf.getinfo(name).file_size, fh


def verify(product: SafeProduct, gdal_paths: list[str], *, progress: bool = False) -> dict[str, Any]:
    """Check the files behind ``gdal_paths`` against ``manifest.safe``: size, then checksum.

    Returns what was checked (for the summary); a mismatch is a :class:`MapError` naming the file. ``progress``
    shows a bar over the bytes hashed (about 1 GB for a full tile's bands).
    """
    if product.manifest is None:
        return {"manifest": None, "checked": 0, "note": "no manifest.safe: files not verified"}
    from tqdm.auto import tqdm

    by_path = {v: k for k, v in product.files.items()}
    checked, algos = 0, set()
    total = sum(
        (product.manifest.get(product.members.get(f"{b}_{r}m") or "") or (0,))[0] or 0
        for b, r in (by_path[p] for p in gdal_paths)
    )
    bar = tqdm(total=total, desc="verifying", unit="B", unit_scale=True, disable=not progress, leave=False)
    for gdal_path in gdal_paths:
        member = product.members.get(f"{by_path[gdal_path][0]}_{by_path[gdal_path][1]}m")
        shown = product.display[f"{by_path[gdal_path][0]}_{by_path[gdal_path][1]}m"]
        entry = product.manifest.get(member or "")
        if entry is None:
            raise MapError(
                f"{shown} is not listed in the product's manifest.safe: not part of the product as delivered"
            )
        size, algo, digest = entry
        try:
            with _stream(product, member or "") as (actual, fh):
                if size is not None and actual != size:
                    raise MapError(
                        f"{shown} has {actual:,} bytes, manifest.safe says {size:,}: truncated or damaged download"
                    )
                if algo and digest:
                    if algo not in _HASHES:
                        raise MapError(
                            f"manifest.safe of {product.path} uses checksum {algo!r}, which map cannot check"
                        )
                    h = _HASHES[algo]()
                    while block := fh.read(1 << 20):
                        h.update(block)
                        bar.update(len(block))
                    if h.hexdigest() != digest:
                        raise MapError(
                            f"{shown}: {algo} {h.hexdigest()[:12]}... differs from manifest.safe ({digest[:12]}...): "
                            "damaged file"
                        )
                    algos.add(algo)
        except (OSError, KeyError, zipfile.BadZipFile, NotImplementedError) as err:  # (Deflate64: not implemented)
            raise MapError(f"cannot read {shown} to verify it: {err}") from None
        checked += 1
    bar.close()
    return {"manifest": "manifest.safe", "checked": checked, "checksums": sorted(algos)}


def _strip_suffixes(name: str) -> str:
    for suffix in (".zip", ".SAFE"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _collect(members: list[str], where: str) -> tuple[str, dict[tuple[str, int], str]]:
    """The product's metadata member and its band members, from relative paths inside the product."""
    if any(m.endswith("MTD_MSIL1C.xml") for m in members) and not any(m.endswith("MTD_MSIL2A.xml") for m in members):
        raise MapError(
            f"{where} is a Level-1C product (MTD_MSIL1C.xml): map needs Level-2A bottom-of-atmosphere reflectance, "
            "what BigEarthNet was made of"
        )
    mtd = sorted((m for m in members if m.endswith("MTD_MSIL2A.xml")), key=len)
    if not mtd:
        raise MapError(f"{where} has no MTD_MSIL2A.xml: not a Sentinel-2 L2A product")
    granules = sorted({m.split("/IMG_DATA/")[0] for m in members if "/IMG_DATA/" in m and "GRANULE/" in m})
    if len(granules) > 1:
        raise MapError(f"{where} holds {len(granules)} granules; map reads single-tile products (one GRANULE)")
    files: dict[tuple[str, int], str] = {}
    for m in members:
        hit = _BAND_FILE.search(m)
        if hit and "/IMG_DATA/" in m:
            files[(hit.group(1), int(hit.group(2)))] = m
    return mtd[0], files


def open_safe(path: str | Path) -> SafeProduct:
    """Index a ``.SAFE`` folder or a ``.zip`` holding one: band files and parsed ``MTD_MSIL2A.xml``."""
    path = Path(path)
    if path.is_dir():
        members = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        mtd, files = _collect(members, str(path))
        try:
            meta = parse_mtd((path / mtd).read_bytes(), str(path / mtd))
        except OSError as err:
            raise MapError(f"cannot read {path / mtd}: {err.strerror or err}") from None
        gdal = {k: str(path / m) for k, m in files.items()}
        display = {f"{b}_{r}m": str(path / m) for (b, r), m in files.items()}
        manifest = None
        if (path / "manifest.safe").is_file():
            manifest = parse_manifest((path / "manifest.safe").read_bytes(), str(path / "manifest.safe"))
        named = {f"{b}_{r}m": m for (b, r), m in files.items()}
        return SafeProduct(_strip_suffixes(path.name), path, "SAFE", gdal, display, meta, named, "", manifest)
    try:
        with zipfile.ZipFile(path) as zf:
            members = [i.filename for i in zf.infolist() if not i.is_dir()]
            mtd, files = _collect(members, str(path))
            meta = parse_mtd(zf.read(mtd), f"{path}/{mtd}")
            root = mtd[: -len("MTD_MSIL2A.xml")]
            manifest = None
            if f"{root}manifest.safe" in members:
                manifest = parse_manifest(zf.read(f"{root}manifest.safe"), f"{path}/{root}manifest.safe")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as err:
        raise MapError(f"{path} is not a readable zip file ({err})") from None
    except OSError as err:
        raise MapError(f"cannot read {path}: {err.strerror or err}") from None
    base = f"/vsizip/{path.resolve()}"
    gdal = {k: f"{base}/{m}" for k, m in files.items()}
    display = {f"{b}_{r}m": f"{path}/{m}" for (b, r), m in files.items()}
    named = {f"{b}_{r}m": m[len(root) :] for (b, r), m in files.items()}
    return SafeProduct(_strip_suffixes(path.name), path, "SAFE zip", gdal, display, meta, named, root, manifest)
