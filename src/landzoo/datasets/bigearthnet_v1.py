"""BigEarthNet v1.0 reader: flat patch folders of 12 L2A band GeoTIFFs plus one labels JSON each.

Layout (formats.md 1.1)::

    BigEarthNet-v1.0/<S2 name>/<S2 name>_<band>.tif      12 bands, uint16, 120/60/20 px by resolution
    BigEarthNet-v1.0/<S2 name>/<S2 name>_labels_metadata.json
    BigEarthNet-S1-v1.0/<S1 name>/<S1 name>_{VV,VH}.tif   optional, float32 dB, 120 px

Why it looks the way it does:

* Splits come from, in order: explicit ``split_files``; ``<folder above the patch folders>/splits/*.csv``
  (what ``landzoo generate`` writes); the official lists shipped inside the ``bigearthnet-common``
  package. Listed patches absent on disk follow the readers' one policy (``missing``, see
  :mod:`landzoo.datasets.base`): counted per split by default, each a bad patch with ``missing="error"``.
* The acquisition time is taken from the JSON, never from the folder name: 69,866 names drop the leading
  zero of the hour (``..._20170924T93020_69_24``).
* Country, season and the S1 pairing come from bigearthnet-common's 590k-row table. Decompressing it costs
  about 2 s, so it is read on the first sample (or :meth:`BigEarthNetV1.name_table`), kept once per process
  as an Arrow table, and filtered once per reader to the patches in its index. Opening a folder stays fast.
* Bands are read in each file's native size and checked (shape, dtype, readability) by
  :func:`landzoo.datasets.base.read_band_file`; nothing is resampled here.
"""

from __future__ import annotations

import bz2
import dataclasses
import functools
import json
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.datasets.base import SPLITS, PatchRecord, Reader, Sample, read_band_file, read_lines
from landzoo.datasets.errors import DatasetError, PatchError
from landzoo.datasets.options import SplitFiles

__all__ = [
    "S1_NAME_RE",
    "S2_NAME_RE",
    "BigEarthNetV1",
    "official_v1_splits",
    "read_s1_group",
    "read_s1_labels_json",
    "read_s2_group",
    "read_s2_labels_json",
    "v1_snow_cloud_lists",
]

#: bigearthnet-common's S2 v1 name regex (hour may have 1 digit: the 5-digit-time quirk).
S2_NAME_RE = re.compile(r"(S2[AB])_MSIL2A_(\d{4})(\d{2})(\d{2})T(\d{1,2})(\d{2})(\d{2})_(\d{1,2})_(\d{1,2})")
#: S1 v1 patch name: sensor, scene start time, S2 tile without the ``T``, col, row.
S1_NAME_RE = re.compile(r"(S1[AB])_IW_GRDH_1SDV_(\d{8})T(\d{6})_(\d{2}[A-Z]{3})_(\d{1,2})_(\d{1,2})")

#: Top-level folder names of the two v1 archives.
S2_FOLDER = "BigEarthNet-v1.0"
S1_FOLDER = "BigEarthNet-S1-v1.0"

_S2_JSON_KEYS = ("labels", "coordinates", "projection", "tile_source", "acquisition_date")
_S1_JSON_KEYS = ("labels", "coordinates", "projection", "corresponding_s2_patch", "scene_source", "acquisition_time")
_COORD_KEYS = ("ulx", "uly", "lrx", "lry")
_PACKAGE = "bigearthnet_common"
#: Flag name in sample meta -> bigearthnet-common list file.
_FLAG_FILES = {
    "seasonal_snow": "patches_with_seasonal_snow.csv.bz2",
    "cloud_or_shadow": "patches_with_cloud_and_shadow.csv.bz2",
}


# --------------------------------------------------------------------------------------------------
# bigearthnet-common package data (read directly: importing bigearthnet_common.base fails with fastcore)
# --------------------------------------------------------------------------------------------------


def _package_file(name: str) -> Any:
    try:
        return resources.files(_PACKAGE) / name
    except ModuleNotFoundError:
        raise DatasetError(
            f"the official BigEarthNet v1 lists come from the Python package bigearthnet-common, which is not "
            f"installed; install it or pass split_files (needed for {name})"
        ) from None


@functools.cache
def _package_lines(name: str) -> tuple[str, ...]:
    """Non-empty lines of a bz2 list shipped in bigearthnet-common (CRLF or LF), cached per process."""
    data = bz2.decompress(_package_file(name).read_bytes()).decode("utf-8")
    return tuple(s for s in (ln.strip() for ln in data.splitlines()) if s)


def official_v1_splits() -> dict[str, list[str]]:
    """The official BigEarthNet-19 v1 split lists (269,695 / 123,723 / 125,866 S2 names)."""
    return {s: list(_package_lines(f"{s}.csv.bz2")) for s in SPLITS}


def v1_snow_cloud_lists() -> dict[str, list[str]]:
    """The official exclusion lists: ``seasonal_snow`` (61,707 names) and ``cloud_or_shadow`` (9,280)."""
    return {flag: list(_package_lines(f)) for flag, f in _FLAG_FILES.items()}


@functools.lru_cache(maxsize=1)
def _official_split_of() -> dict[str, str]:
    return {name: s for s in SPLITS for name in _package_lines(f"{s}.csv.bz2")}


@functools.lru_cache(maxsize=1)
def _flag_sets() -> dict[str, frozenset[str]]:
    return {flag: frozenset(_package_lines(f)) for flag, f in _FLAG_FILES.items()}


@functools.lru_cache(maxsize=1)
def _name_table() -> Any:
    """bigearthnet-common's ``s1_name,s2_name,country,season`` table as an Arrow table (~2 s, once)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    raw = bz2.decompress(_package_file("s1_s2_name_country_season.csv.bz2").read_bytes())
    return pacsv.read_csv(pa.BufferReader(raw))


# --------------------------------------------------------------------------------------------------
# Band reading shared with the v2 reader (same band files, same sizes)
# --------------------------------------------------------------------------------------------------


def read_s2_group(folder: Path, stem: str, bands: Sequence[str], patch_id: str) -> np.ndarray:
    """Read ``<folder>/<stem>_<band>.tif`` for bands of one resolution as ``uint16[C, H, W]``.

    Each file must be one band of uint16 at the band's native BigEarthNet size (120/60/20 px).
    """
    arrays = []
    for name in bands:
        px = contract.band(name).ben_patch_px
        arrays.append(read_band_file(folder / f"{stem}_{name}.tif", patch_id, shape=(px, px), dtypes=("uint16",)))
    return np.concatenate(arrays, axis=0)


def read_s1_group(folder: Path, s1_name: str, bands: Sequence[str], patch_id: str) -> np.ndarray:
    """Read ``<folder>/<s1_name>_{VV,VH}.tif`` (float32 dB, 120 px) as ``float32[C, 120, 120]``."""
    px = contract.band("VV").ben_patch_px
    arrays = [
        read_band_file(folder / f"{s1_name}_{pol}.tif", patch_id, shape=(px, px), dtypes=("float32",)) for pol in bands
    ]
    return np.concatenate(arrays, axis=0)


def _read_json(path: Path, patch_id: str) -> dict[str, Any]:
    """A labels JSON file as a dict; any fault (absent, unreadable, not JSON, not an object) is a PatchError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PatchError(patch_id, path, "labels JSON is missing") from None
    except OSError as err:
        raise PatchError(patch_id, path, f"unreadable JSON ({err.strerror or err})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise PatchError(patch_id, path, f"malformed JSON (not UTF-8: {err.reason} at byte {err.start})") from None
    except ValueError as err:  # JSONDecodeError, and ints over Python's digit limit
        raise PatchError(patch_id, path, f"malformed JSON ({err})") from None
    except RecursionError:
        raise PatchError(patch_id, path, "malformed JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise PatchError(patch_id, path, f"JSON is not an object but a {type(data).__name__}")
    return data


def _check_keys(data: dict[str, Any], keys: Sequence[str], path: Path, patch_id: str) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise PatchError(patch_id, path, f"JSON lacks key(s) {', '.join(missing)}")


def _text(data: dict[str, Any], key: str, path: Path, patch_id: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise PatchError(patch_id, path, f"'{key}' must be a string, got {value!r:.80}")
    return value


@dataclasses.dataclass(frozen=True)
class S2Labels:
    """What a v1 S2 ``_labels_metadata.json`` says: 43-class labels, acquisition time (ISO), tile source."""

    labels: tuple[str, ...]
    date: str
    tile_source: str


def read_s2_labels_json(path: Path, patch_id: str) -> S2Labels:
    """Read and check an S2 labels JSON: every fault is a :class:`PatchError` naming the patch and the file."""
    data = _read_json(path, patch_id)
    _check_keys(data, _S2_JSON_KEYS, path, patch_id)
    labels = data["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise PatchError(patch_id, path, f"'labels' must be a non-empty list of class names, got {labels!r:.200}")
    unknown = [x for x in labels if x not in contract.BEN43_TO_BEN19]
    if unknown:
        raise PatchError(patch_id, path, f"unknown BigEarthNet-43 label(s) {', '.join(map(repr, unknown))}")
    coords = data["coordinates"]
    if not isinstance(coords, dict) or any(not _finite_number(coords.get(k)) for k in _COORD_KEYS):
        raise PatchError(patch_id, path, f"'coordinates' must hold finite numbers {', '.join(_COORD_KEYS)}")
    when = data["acquisition_date"]
    try:
        if not isinstance(when, str):
            raise ValueError
        date = datetime.strptime(when, "%Y-%m-%d %H:%M:%S").isoformat()
    except ValueError:
        raise PatchError(patch_id, path, f"acquisition_date {when!r:.80} is not 'YYYY-MM-DD HH:MM:SS'") from None
    return S2Labels(tuple(labels), date, _text(data, "tile_source", path, patch_id))


def read_s1_labels_json(path: Path, patch_id: str) -> tuple[str, str | None]:
    """Read and check an S1 labels JSON of S2 patch ``patch_id``: its paired S2 name and acquisition time."""
    data = _read_json(path, patch_id)
    _check_keys(data, _S1_JSON_KEYS, path, patch_id)
    s2 = data["corresponding_s2_patch"]
    if s2 != patch_id:
        raise PatchError(patch_id, path, f"S1 JSON pairs with {s2!r:.80}, not with this patch")
    when = data["acquisition_time"]
    if when is not None and not isinstance(when, str):
        raise PatchError(patch_id, path, f"'acquisition_time' must be a string, got {when!r:.80}")
    return s2, when or None


def _finite_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and math.isfinite(x))


# --------------------------------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------------------------------


class BigEarthNetV1(Reader):
    """BigEarthNet v1.0 S2 (and optionally S1) patches, labelled with BigEarthNet-19 or the 43 CLC classes.

    ``root`` is the ``BigEarthNet-v1.0`` folder (any folder of patch folders) or its parent. Takes the
    common arguments of :class:`Reader` and the fields of :class:`BigEarthNetV1.Options`.
    Attributes set while indexing, beside the common ones: ``patches_dir`` and ``s1_dir``; ``excluded``
    counts the snow/cloud patches left out (``drop_snow_cloud``) per flag.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        """Options of the BigEarthNet v1 reader."""

        split_files: SplitFiles | None = None
        """Split lists to use (CSV, ``S2name`` or ``S2name,S1name`` a row); default: ``splits/*.csv`` beside
        the patch folder, else the official lists shipped in bigearthnet-common."""
        s1_root: Path | None = None
        """The ``BigEarthNet-S1-v1.0`` folder (or its parent), for S1 bands; default: one beside the S2 folder."""
        drop_snow_cloud: bool = True
        """Leave out the patches of the official seasonal-snow and cloud/shadow lists (counted in ``excluded``)."""

    name = "bigearthnet-v1"
    available_bands = contract.S2_L2A_BANDS + contract.S1_BANDS
    class_sets = ("ben19", "ben43")
    options: Options

    # ---- index --------------------------------------------------------------------------------------
    def _index(self) -> list[PatchRecord]:
        self.patches_dir = self.root / S2_FOLDER if (self.root / S2_FOLDER).is_dir() else self.root
        self._names: dict[str, tuple[str, str, str]] | None = None
        self._s1_by_json: dict[str, str] | None = None
        self.s1_dir: Path | None = self._resolve_s1_dir() if "s1" in self.groups else None
        on_disk = self._walk()
        split_of, pair_of = self._splits(on_disk)
        flags = _flag_sets()
        drop = self.options.drop_snow_cloud
        self.excluded = {flag: 0 for flag in flags} if drop else {}
        records = []
        for name in sorted(on_disk):
            meta: dict[str, Any] = {flag: name in names for flag, names in flags.items()}
            if drop and any(meta.values()):
                for flag, is_set in meta.items():
                    self.excluded[flag] += is_set
                continue
            if name in pair_of:
                meta["s1_name"] = pair_of[name]
            records.append(PatchRecord(name, split_of.get(name), self._location(name), meta))
        # Every split source is a list, so a patch in none of them is worth counting, not silently split None.
        self.unlisted = [r.id for r in records if r.split is None]
        return records

    def _location(self, name: str) -> str:
        return (self.patches_dir / name).relative_to(self.root).as_posix()

    def _walk(self) -> set[str]:
        """Names of the patch folders; a folder whose name is no S2 v1 patch name is a bad patch."""
        names = set()
        try:
            entries = list(os.scandir(self.patches_dir))
        except OSError as err:
            raise DatasetError(f"{self.name}: cannot list {self.patches_dir} ({err})") from None
        for entry in entries:
            if not entry.is_dir():
                continue
            if S2_NAME_RE.fullmatch(entry.name):
                names.add(entry.name)
            else:
                self._bad(PatchError(entry.name, entry.path, "folder name is not a BigEarthNet v1 S2 patch name"))
        return names

    def _split_lists(self) -> tuple[dict[str, Path], bool]:
        """The split files to use, and whether they are the official lists (counted in bulk when absent)."""
        if self.options.split_files:
            files = dict(self.options.split_files)
            self.split_source = "split files: " + ", ".join(f"{k}={v}" for k, v in files.items())
            return files, False
        folder = self.patches_dir.parent / "splits"
        found = {s: folder / f"{s}.csv" for s in SPLITS if (folder / f"{s}.csv").is_file()}
        if found:
            self.split_source = f"{folder} ({', '.join(found)})"
            return found, False
        self.split_source = "official v1 lists (bigearthnet-common)"
        return {}, True

    def _splits(self, on_disk: set[str]) -> tuple[dict[str, str], dict[str, str]]:
        """Map patch name -> split (and -> S1 name from 2-column lists); apply ``missing`` to absent ones."""
        files, official = self._split_lists()
        if official:
            split_of = _official_split_of()
            if self.missing == "report":  # in bulk: the official lists name 519k patches
                present = Counter(split_of.get(name) for name in on_disk)
                for s in SPLITS:
                    self._count_absent(s, len(_package_lines(f"{s}.csv.bz2")) - present[s])
            else:
                for s in SPLITS:
                    for name in _package_lines(f"{s}.csv.bz2"):
                        if name not in on_disk:
                            self._absent(name, s, self.patches_dir / name, f"official v1 list {s}.csv")
            return split_of, {}
        split_of: dict[str, str] = {}
        pair_of: dict[str, str] = {}
        for s, path in files.items():
            for name, s1 in self._parse_split_file(path):
                if name in split_of:
                    raise DatasetError(f"{path}: patch {name} is also in the {split_of[name]} split list")
                split_of[name] = s
                if s1:
                    pair_of[name] = s1
                if name not in on_disk:
                    self._absent(name, s, self.patches_dir / name, str(path))
        return split_of, pair_of

    @staticmethod
    def _parse_split_file(path: Path) -> list[tuple[str, str | None]]:
        """Rows of a split CSV: ``S2name`` or ``S2name,S1name``, CRLF or LF, no header."""
        if not path.is_file():
            raise DatasetError(f"split file {path} does not exist")
        rows = []
        for i, line in enumerate(read_lines(path), 1):
            cols = [c.strip() for c in line.split(",")]
            if len(cols) > 2 or not S2_NAME_RE.fullmatch(cols[0]):
                raise DatasetError(f"{path}, line {i}: expected 'S2name' or 'S2name,S1name', got {line!r}")
            if len(cols) == 2 and not S1_NAME_RE.fullmatch(cols[1]):
                raise DatasetError(f"{path}, line {i}: {cols[1]!r} is not a BigEarthNet v1 S1 patch name")
            rows.append((cols[0], cols[1] if len(cols) == 2 else None))
        return rows

    def _resolve_s1_dir(self) -> Path:
        s1_root = self.options.s1_root
        if s1_root is None:
            guess = self.patches_dir.parent / S1_FOLDER
            if guess.is_dir():
                return guess
            raise DatasetError(f"{self.name}: S1 bands need s1_root (no {guess} beside the S2 patches)")
        if not s1_root.is_dir():
            raise DatasetError(f"{self.name}: S1 folder {s1_root} does not exist")
        return s1_root / S1_FOLDER if (s1_root / S1_FOLDER).is_dir() else s1_root

    # ---- lazily loaded metadata ---------------------------------------------------------------------
    def name_table(self) -> dict[str, tuple[str, str, str]]:
        """``S2 name -> (S1 name, country, season)`` for the indexed patches found in bigearthnet-common's table.

        Loaded on first use (about 2 s, once per process), filtered to this reader's patches, cached.
        Patches absent from the table (non-official names) get no entry.
        """
        if self._names is None:
            import pyarrow as pa
            import pyarrow.compute as pc

            table = _name_table()
            wanted = pa.array(self.ids(), type=pa.string())
            sub = table.filter(pc.is_in(table.column("s2_name"), value_set=wanted))
            cols = [sub.column(c).to_pylist() for c in ("s2_name", "s1_name", "country", "season")]
            self._names = {s2: (s1, country, season) for s2, s1, country, season in zip(*cols, strict=True)}
        return self._names

    def _s1_name(self, record: PatchRecord) -> str:
        """The S1 patch paired with an S2 patch: split list, then the official table, then the S1 JSONs."""
        if record.meta.get("s1_name"):
            return record.meta["s1_name"]
        known = self.name_table().get(record.id)
        if known is not None:
            return known[0]
        if self._s1_by_json is None:
            self._s1_by_json = self._scan_s1_jsons()
        try:
            return self._s1_by_json[record.id]
        except KeyError:
            raise PatchError(
                record.id,
                self.s1_dir,
                "no S1 patch is paired with it (not in a 2-column split list, the official table or any S1 JSON)",
            ) from None

    def _scan_s1_jsons(self) -> dict[str, str]:
        """``corresponding_s2_patch -> S1 name`` from every readable S1 JSON (fallback for unofficial names)."""
        assert self.s1_dir is not None
        out = {}
        for entry in os.scandir(self.s1_dir):
            path = Path(entry.path) / f"{entry.name}_labels_metadata.json"
            try:
                s2 = json.loads(path.read_bytes().decode("utf-8")).get("corresponding_s2_patch")
            except (OSError, ValueError, AttributeError, RecursionError):
                continue  # that S1 patch pairs with nothing; a patch that needs it fails with its own error
            if isinstance(s2, str) and s2:
                out[s2] = entry.name
        return out

    # ---- reading ------------------------------------------------------------------------------------
    def _read(self, record: PatchRecord, *, meta: bool = True) -> Sample:
        folder = self.root / record.location
        if not folder.is_dir():
            raise PatchError(record.id, folder, "patch folder is missing")
        image: dict[str, np.ndarray] = {}
        s1_meta: dict[str, Any] = {}
        for group, names in self.groups.items():
            if group == "s1":
                image[group] = self._read_s1(record, names, s1_meta)
            else:
                image[group] = read_s2_group(folder, record.id, names, record.id)
        parsed = read_s2_labels_json(folder / f"{record.id}_labels_metadata.json", record.id)
        labels43 = list(parsed.labels)
        labels19 = contract.ben43_to_ben19(labels43)
        s1_name, country, season = self.name_table().get(record.id, (None,) * 3) if meta else (None,) * 3
        extra = {
            "country": country,
            "season": season,
            "date": parsed.date,
            "tile_source": parsed.tile_source,
            "s1_name": record.meta.get("s1_name") or s1_name,
            "no_ben19_labels": not labels19,
            **s1_meta,
        }
        sample = self._sample(record, image, labels19 if self.class_set_name == "ben19" else labels43)
        sample["meta"].update(extra)
        return sample

    def _read_s1(self, record: PatchRecord, bands: Sequence[str], meta: dict[str, Any]) -> np.ndarray:
        assert self.s1_dir is not None
        s1_name = self._s1_name(record)
        folder = self.s1_dir / s1_name
        if not folder.is_dir():
            raise PatchError(record.id, folder, f"paired S1 patch folder {s1_name} is missing")
        _, meta["s1_date"] = read_s1_labels_json(folder / f"{s1_name}_labels_metadata.json", record.id)
        meta["s1_name"] = s1_name
        return read_s1_group(folder, s1_name, bands, record.id)
