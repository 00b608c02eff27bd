"""EuroSAT multispectral reader (Helber et al. 2018/2019): 27,000 single-label 64x64 patches in 10 class folders.

Each patch is one 13-band uint16 GeoTIFF in ``contract.EUROSAT_BANDS`` order, which puts **B8A last** (unlike
SEN12MS). Bands are picked by name, so a selection never inherits that order. Every band is on one 10 m grid,
so all bands form one ``"10m"`` group.

Layouts found under ``root``, first match wins: ``EuroSAT_MS/<Class>/`` (Zenodo),
``ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/`` (the DFKI zip), or ``<Class>/`` directly.

The common split lists (``eurosat-{train,val,test}.txt``, Neumann et al. 2019) name ``.jpg`` files even for
the MS data; they are mapped to ``.tif``. Without lists every patch has split None; :func:`stratified_split`
makes seeded, class-stratified splits.

File names: every EuroSAT file is ``<Class>_<number>.tif`` in its class folder (``AnnualCrop/AnnualCrop_1.tif``),
and the split lists name patches that way. A file of any other name (a copy ``AnnualCrop_1 (2).tif``, an
accented or spaced name) cannot be told apart from the patch it copies and no list can name it, so it is a bad
patch, with the reason that is true for it: not of that form, or naming another class than its folder.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from landzoo import contract
from landzoo.datasets.base import SPLITS, PatchRecord, Reader, Sample, common_patch_px, read_band_file, read_lines
from landzoo.datasets.errors import DatasetError, PatchError
from landzoo.datasets.options import SplitFiles

__all__ = ["LAYOUTS", "EuroSAT", "read_eurosat_split_list", "stratified_split"]

#: Folders (relative to the root) that hold the class folders, in the order they are tried; "" is the root itself.
LAYOUTS: tuple[str, ...] = ("EuroSAT_MS", "ds/images/remote_sensing/otherDatasets/sentinel_2/tif", "")
#: ``<Class>_<number>``, ASCII only (``\d`` would also match other scripts' digits)
_NAME = re.compile(r"^(?P<cls>[A-Za-z]+)_(?P<n>[0-9]+)$", re.ASCII)
_PATCH_PX = 64
_FILE_BANDS = 13


def read_eurosat_split_list(path: str | os.PathLike) -> list[str]:
    """Patch ids (file stems, e.g. ``AnnualCrop_1``) of a split list whose names end in ``.jpg`` or ``.tif``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"eurosat: split list {path} does not exist")
    ids = []
    for line in read_lines(path):
        name = os.path.basename(line.replace("\\", "/"))
        stem, ext = os.path.splitext(name)
        if ext.lower() not in (".jpg", ".tif", ".tiff", ""):
            raise DatasetError(f"eurosat: {path}: {line!r} is not a .jpg or .tif file name")
        ids.append(stem)
    return ids


def stratified_split(labels: Sequence[Hashable], fractions: Mapping[str, float], seed: int) -> list[str]:
    """Assign each item a split so that every class is divided by ``fractions`` (seeded, deterministic).

    Per class, the items are shuffled and cut into consecutive runs whose sizes are the largest-remainder
    rounding of ``fractions * class size``, so the counts are exact and every item gets a split.
    """
    names = list(fractions)
    shares = np.array([fractions[n] for n in names], dtype=np.float64)
    if not names or (shares < 0).any() or abs(shares.sum() - 1.0) > 1e-6:
        raise DatasetError(f"split fractions must be non-negative and sum to 1, got {dict(fractions)}")
    rng = np.random.default_rng(seed)
    out: list[str] = [""] * len(labels)
    by_class: dict[Hashable, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for label in sorted(by_class, key=repr):
        idx = rng.permutation(np.array(by_class[label]))
        exact = shares * len(idx)
        counts = np.floor(exact).astype(int)
        for j in np.argsort(-(exact - counts), kind="stable")[: len(idx) - counts.sum()]:
            counts[j] += 1
        start = 0
        for name, count in zip(names, counts, strict=True):
            for i in idx[start : start + count]:
                out[int(i)] = name
            start += count
    return out


class EuroSAT(Reader):
    """Random-access reader of EuroSAT MS (13-band GeoTIFFs), labelled by class folder.

    Takes the common arguments of :class:`Reader` and the fields of :class:`EuroSAT.Options`. With split
    lists, patches on disk that no list names get split None and are listed in ``reader.unlisted``.
    Attributes set while indexing, beside the common ones: ``image_root``, ``split_files``, ``patch_px``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        """Options of the EuroSAT reader."""

        split_files: SplitFiles | None = None
        """Split lists (``.jpg`` or ``.tif`` names); default ``ROOT/eurosat-{train,val,test}.txt`` where present.
        An empty mapping (``-o split_files=``) turns split lists off. A patch in two lists is an error."""
        geo: bool = False
        """Add the file's CRS and affine transform to ``meta`` (opens each file a second time)."""
        patch_px: int | None = None
        """The patch side in pixels; default: read from the files (64 in EuroSAT)."""

        def __post_init__(self) -> None:
            if self.patch_px is not None and self.patch_px <= 0:
                raise DatasetError(f"eurosat option patch_px: must be positive, not {self.patch_px}")

    name: ClassVar[str] = "eurosat"
    available_bands: ClassVar[tuple[str, ...]] = contract.EUROSAT_BANDS
    default_bands: ClassVar[str] = "s2_10m_20m"
    class_sets: ClassVar[tuple[str, ...]] = ("eurosat10",)
    native_groups: ClassVar[bool] = False
    options: Options

    # ---- index ------------------------------------------------------------------------------------
    def _find_image_root(self) -> Path:
        known = set(contract.EUROSAT_CLASSES)
        for layout in LAYOUTS:
            folder = self.root / layout if layout else self.root
            if not folder.is_dir():
                continue
            subdirs = [e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
            if not any(d in known for d in subdirs):
                continue
            unknown = sorted(d for d in subdirs if d not in known)
            if unknown:
                raise DatasetError(
                    f"eurosat: {folder} has folder(s) {', '.join(unknown)} that are not EuroSAT classes "
                    f"({', '.join(contract.EUROSAT_CLASSES)})"
                )
            return folder
        tried = ", ".join(str(self.root / layout) for layout in LAYOUTS)
        raise DatasetError(f"eurosat: no EuroSAT class folders found (looked in {tried})")

    def _find_split_files(self) -> dict[str, Path]:
        if self.options.split_files is not None:
            files = dict(self.options.split_files)
            for split, path in files.items():
                if not path.is_file():
                    raise DatasetError(f"eurosat: {split} split list {path} does not exist")
            return files
        files = {s: self.root / f"eurosat-{s}.txt" for s in SPLITS}
        return {s: p for s, p in files.items() if p.is_file()}

    def _index(self) -> list[PatchRecord]:
        image_root = self.image_root = self._find_image_root()
        on_disk: dict[str, str] = {}
        for cls in contract.EUROSAT_CLASSES:
            folder = image_root / cls
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if not entry.name.endswith(".tif"):
                    continue
                stem = entry.name[: -len(".tif")]
                m = _NAME.match(stem)
                if m is None:
                    reason = f"file name is not <Class>_<number>.tif like every EuroSAT file (e.g. {cls}_1.tif)"
                    self._bad(PatchError(stem, entry.path, reason))
                elif m["cls"] != cls:
                    self._bad(PatchError(stem, entry.path, f"file name says class {m['cls']}, its folder is {cls}"))
                else:
                    on_disk[stem] = (folder / entry.name).relative_to(self.root).as_posix()

        self.split_files = self._find_split_files()
        self.split_source = ", ".join(f"{s}={p}" for s, p in self.split_files.items()) or "no split lists"
        split_of: dict[str, str] = {}
        listed_in: dict[str, Path] = {}
        for split, path in self.split_files.items():
            for pid in read_eurosat_split_list(path):
                if pid in split_of:
                    raise DatasetError(
                        f"eurosat: patch {pid} is in both {listed_in[pid]} and {path}; split lists must not overlap "
                        "(pass split_files= to choose lists, or split_files={} for none)"
                    )
                split_of[pid] = split
                listed_in[pid] = path

        for pid, split in split_of.items():
            if pid not in on_disk:
                m = _NAME.match(pid)
                known = m is not None and m["cls"] in contract.EUROSAT_CLASSES
                expected = image_root / m["cls"] / f"{pid}.tif" if known else image_root  # type: ignore[index]
                self._absent(pid, split, expected, str(listed_in[pid]))
        order = {c: i for i, c in enumerate(contract.EUROSAT_CLASSES)}

        def key(pid: str) -> tuple[int, int]:
            m = _NAME.match(pid)
            assert m is not None  # on_disk only holds matching names
            return order[m["cls"]], int(m["n"])

        records: list[PatchRecord] = []
        for pid in sorted(on_disk, key=key):
            cls = on_disk[pid].split("/")[-2]
            records.append(PatchRecord(pid, split_of.get(pid), on_disk[pid], {"class": cls}))
        self.unlisted = [r.id for r in records if r.split is None] if self.split_files else []
        self.patch_px = self.options.patch_px or common_patch_px(
            [self.root / r.location for r in records if self._wanted(r.split)], _PATCH_PX
        )
        return records

    # ---- read -------------------------------------------------------------------------------------
    def _read(self, record: PatchRecord, *, meta: bool = True) -> Sample:
        path = self.root / record.location
        arr = read_band_file(
            path, record.id, shape=(self.patch_px, self.patch_px), dtypes=("uint16",), count=_FILE_BANDS
        )
        image = {group: arr[[contract.EUROSAT_BANDS.index(n) for n in names]] for group, names in self.groups.items()}
        sample = self._sample(record, image, [record.meta["class"]])
        if self.options.geo and meta:
            import rasterio

            with rasterio.open(path) as src:
                sample["meta"]["crs"] = src.crs.to_string() if src.crs else None
                sample["meta"]["transform"] = tuple(src.transform)[:6]
        return sample
