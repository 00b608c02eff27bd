"""What every dataset reader shares: the sample dict, the patch index, errors and bad-patch handling.

A reader is a random-access sequence of samples over one raw dataset folder. Building it lists the
patches (cheap: names, splits, metadata known without opening pixels); indexing reads one patch.

Sample dict (torchgeo style, but at *native* resolution per band group, never resampled here)::

    {
        "id": str,                              # the dataset's own patch id
        "image": {"10m": uint16[C,H,W], ...},   # band groups in the order of the band selection
        "bands": ("B02", "B03", ...),           # band names, concatenation order of the groups
        "label": uint8[num_classes],            # multi-hot (one-hot for single-label sets), class-set order
        "labels": ["Arable land", ...],         # the same, as names
        "meta": {"split": "train", ...},        # split, country, season, date, ... where known
    }

Errors: anything wrong with a patch raises :class:`PatchError`, naming the patch and the file. A reader
built with ``on_bad="skip"`` instead records :class:`BadPatch` entries in ``reader.bad`` and leaves the
patch out (``iter_samples``), so nothing is ever skipped silently.
"""

from __future__ import annotations

import abc
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from landzoo import contract
from landzoo.errors import LandzooError

SPLITS = ("train", "val", "test")
OnBad = Literal["raise", "skip"]
Sample = dict[str, Any]


class DatasetError(LandzooError):
    """A dataset-level problem (missing root, missing split list, bad option)."""


class PatchError(DatasetError):
    """A problem with one patch; the message names the patch and the file at fault."""

    def __init__(self, patch_id: str, path: str | os.PathLike | None, reason: str) -> None:
        self.patch_id = patch_id
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f" ({self.path})" if self.path else ""
        super().__init__(f"patch {patch_id}{where}: {reason}")


@dataclass(frozen=True)
class BadPatch:
    """A patch left out in ``on_bad="skip"`` mode, with why."""

    patch_id: str
    path: str | None
    reason: str

    @classmethod
    def from_error(cls, err: PatchError) -> BadPatch:
        return cls(err.patch_id, err.path, err.reason)


@dataclass(frozen=True)
class PatchRecord:
    """One entry of a reader's index: what is known about a patch without reading its pixels."""

    id: str
    split: str | None
    location: str  # folder or file that holds the patch, relative to the reader's root
    meta: dict[str, Any] = field(default_factory=dict)


class Reader(abc.ABC, Sequence[Sample]):
    """Base class of the raw-dataset readers.

    Subclasses set the class attributes, implement :meth:`_index` (list the patches) and
    :meth:`_read` (read one), and raise :class:`PatchError` for anything wrong with a patch.
    """

    #: Dataset name as used on the command line (``bigearthnet-v1``, ...).
    name: ClassVar[str]
    #: Band names in the files, in file order (what can be selected).
    available_bands: ClassVar[tuple[str, ...]]
    #: Default band selection.
    default_bands: ClassVar[str] = "s2_10m_20m"
    #: Class sets this reader can label with; the first is the default.
    class_sets: ClassVar[tuple[str, ...]]
    #: True where bands keep their sensor resolution (BigEarthNet), False where all share one grid.
    native_groups: ClassVar[bool] = True

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        bands: str | Sequence[str] | None = None,
        classes: str | None = None,
        splits: Sequence[str] | None = None,
        on_bad: OnBad = "raise",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: dataset folder {self.root} does not exist")
        if on_bad not in ("raise", "skip"):
            raise DatasetError(f"on_bad must be 'raise' or 'skip', not {on_bad!r}")
        self.on_bad: OnBad = on_bad
        self.bands = contract.resolve_bands(bands if bands is not None else self.default_bands)
        unknown = [b for b in self.bands if b not in self.available_bands]
        if unknown:
            raise DatasetError(
                f"{self.name} has no band(s) {', '.join(unknown)}; it has {', '.join(self.available_bands)}"
            )
        self.groups = contract.band_groups(self.bands, native=self.native_groups)
        self.class_set_name = classes or self.class_sets[0]
        if self.class_set_name not in self.class_sets:
            raise DatasetError(
                f"{self.name} cannot label with class set {self.class_set_name!r}; "
                f"choose from {', '.join(self.class_sets)}"
            )
        self.classes = contract.class_set(self.class_set_name)
        if splits is not None:
            bad = [s for s in splits if s not in SPLITS]
            if bad:
                raise DatasetError(f"unknown split(s) {', '.join(bad)}; splits are {', '.join(SPLITS)}")
        self.splits = tuple(splits) if splits is not None else None
        self.bad: list[BadPatch] = []
        records = self._index()
        if self.splits is not None:
            records = [r for r in records if r.split in self.splits]
        self.records: list[PatchRecord] = records

    # ---- subclass interface -----------------------------------------------------------------------
    @abc.abstractmethod
    def _index(self) -> list[PatchRecord]:
        """List the patches. Use :meth:`_bad` for a patch that is listed but broken (e.g. absent)."""

    @abc.abstractmethod
    def _read(self, record: PatchRecord) -> Sample:
        """Read one patch; raise :class:`PatchError` for anything wrong with it."""

    # ---- helpers for subclasses -------------------------------------------------------------------
    def _bad(self, err: PatchError) -> None:
        """Raise ``err``, or record it as a bad patch in skip mode."""
        if self.on_bad == "raise":
            raise err
        self.bad.append(BadPatch.from_error(err))

    def _sample(self, record: PatchRecord, image: dict[str, np.ndarray], labels: Sequence[str]) -> Sample:
        """Assemble a sample dict; ``labels`` are names in this reader's class set."""
        try:
            label = contract.multi_hot(labels, self.classes)
        except contract.ContractError as err:
            raise PatchError(record.id, self.root / record.location, str(err)) from None
        ordered = [c for c in self.classes if c in set(labels)]
        return {
            "id": record.id,
            "image": image,
            "bands": tuple(b for group in image for b in self.groups[group]),
            "label": label,
            "labels": ordered,
            "meta": {"split": record.split, **record.meta},
        }

    # ---- public API -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self._read(self.records[index])

    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def split_counts(self) -> dict[str, int]:
        """Patches per split in the index (``None`` for patches in no split)."""
        return dict(Counter(r.split for r in self.records))

    def iter_samples(self, progress: bool = False) -> Iterator[Sample]:
        """Yield every sample; in skip mode a bad patch is recorded in ``self.bad`` and left out."""
        records: Sequence[PatchRecord] = self.records
        if progress:
            from tqdm.auto import tqdm

            records = tqdm(records, desc=f"reading {self.name}", unit="patch")
        for record in records:
            try:
                yield self._read(record)
            except PatchError as err:
                self._bad(err)


def read_band_file(
    path: Path,
    patch_id: str,
    *,
    shape: tuple[int, int] | None = None,
    dtypes: tuple[str, ...] = ("uint16",),
    count: int = 1,
) -> np.ndarray:
    """Read a whole GeoTIFF as ``[count, H, W]`` and check it, raising :class:`PatchError` on any fault.

    Checks presence, readability (truncated or corrupt files), band count, dtype and shape, so a reader
    never passes on a wrong-sized or wrong-typed array. The plain uncompressed TIFFs the datasets ship are
    parsed directly (:mod:`landzoo.datasets.rawtiff`, ~10x faster than a GDAL open); anything else, and
    every damaged file, goes through rasterio, which also words the error.
    """
    import rasterio
    from rasterio.errors import RasterioError

    from landzoo.datasets import rawtiff

    fast = rawtiff.read_plain_tiff(path) if rawtiff.ENABLED else None
    if fast is not None:  # read, so it exists: no stat needed on the fast path
        _check_array(fast, path, patch_id, shape=shape, dtypes=dtypes, count=count)
        return fast
    if not path.is_file():
        raise PatchError(patch_id, path, "file is missing")
    try:
        with rasterio.open(path) as src:
            if src.count != count:
                raise PatchError(patch_id, path, f"expected {count} band(s), file has {src.count}")
            if src.dtypes[0] not in dtypes:
                raise PatchError(patch_id, path, f"expected dtype {'/'.join(dtypes)}, file has {src.dtypes[0]}")
            if shape is not None and (src.height, src.width) != tuple(shape):
                raise PatchError(
                    patch_id, path, f"expected {shape[0]}x{shape[1]} px, file has {src.height}x{src.width}"
                )
            return src.read()
    except RasterioError as err:
        raise PatchError(patch_id, path, f"unreadable GeoTIFF ({err})") from None


#: numpy dtype character -> name, for the common cases (``dtype.name`` costs ~10 us per call)
_DTYPE_NAMES = {"H": "uint16", "f": "float32", "B": "uint8", "h": "int16", "I": "uint32", "i": "int32"}


def _check_array(
    arr: np.ndarray, path: Path, patch_id: str, *, shape: tuple[int, int] | None, dtypes: tuple[str, ...], count: int
) -> None:
    if arr.shape[0] != count:
        raise PatchError(patch_id, path, f"expected {count} band(s), file has {arr.shape[0]}")
    if _DTYPE_NAMES.get(arr.dtype.char) not in dtypes and arr.dtype.name not in dtypes:
        raise PatchError(patch_id, path, f"expected dtype {'/'.join(dtypes)}, file has {arr.dtype.name}")
    if shape is not None and arr.shape[1:] != tuple(shape):
        raise PatchError(patch_id, path, f"expected {shape[0]}x{shape[1]} px, file has {arr.shape[1]}x{arr.shape[2]}")


def read_lines(path: Path) -> list[str]:
    """Lines of a text list, stripped of ``\\r`` and blanks (CRLF and LF lists both occur)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return [ln.strip() for ln in fh.read().splitlines() if ln.strip()]
