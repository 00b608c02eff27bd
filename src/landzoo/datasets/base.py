"""What every dataset reader shares: the common arguments, the sample dicts, the patch index, bad patches.

A reader is a random-access sequence of samples over one raw dataset folder. Building it lists the
patches (cheap: names, splits, metadata known without opening pixels); indexing reads one patch.

Two views of a patch:

* ``reader[i]`` is what a plain ``torch.utils.data.DataLoader`` with its default collate takes: ``id``,
  ``image`` (band groups at native resolution) and ``label`` (fixed-size multi-hot), plus any other
  fixed-size array a reader adds (``reference_map``), after ``transforms``. The names (band, class) and the
  ``meta`` are not in it: they have variable lengths and None values that ``default_collate`` refuses. The
  names are ``reader.bands`` / ``reader.classes``; a patch's meta is ``reader.read(i)["meta"]``.
* ``reader.read(i)`` is the full sample dict (what ``inspect`` and ``encode`` use), never transformed::

    {
        "id": str,                              # the dataset's own patch id
        "image": {"10m": uint16[C,H,W], ...},   # band groups in the order of the band selection
        "bands": ("B02", "B03", ...),           # band names, concatenation order of the groups
        "label": uint8[num_classes],            # multi-hot (one-hot for single-label sets), class-set order
        "labels": ["Arable land", ...],         # the same, as names
        "meta": {"split": "train", ...},        # split, country, season, date, ... where known
    }

Common arguments (every reader, :class:`Reader`): ``bands``, ``classes``, ``splits``, ``on_bad``, ``missing``,
``transforms``. Everything else a reader can be told is its own ``Options`` dataclass
(:mod:`landzoo.datasets.options`), given as keyword arguments beside the common ones.

Errors: anything wrong with a patch raises :class:`PatchError`, naming the patch and the file. A reader
built with ``on_bad="skip"`` instead records :class:`BadPatch` entries in ``reader.bad`` and leaves the
patch out (``iter_samples``), so nothing is ever skipped silently.

Listed patches absent on disk (one policy for every reader, ``missing``): ``"report"`` (default) counts them
per split in ``reader.missing_from_disk`` (shown by ``inspect``, written to a store's ``report.json``);
``"error"`` makes each one a :class:`PatchError` (raised, or recorded in ``reader.bad`` with ``on_bad="skip"``).
"""

from __future__ import annotations

import abc
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from landzoo import contract
from landzoo.datasets.errors import DatasetError, PatchError
from landzoo.datasets.options import NoOptions, make_options

__all__ = [
    "SPLITS",
    "BadPatch",
    "DatasetError",
    "Missing",
    "OnBad",
    "PatchError",
    "PatchRecord",
    "Reader",
    "Sample",
    "read_band_file",
    "read_lines",
]

SPLITS = ("train", "val", "test")
OnBad = Literal["raise", "skip"]
Missing = Literal["report", "error"]
Sample = dict[str, Any]
#: Keys of the full sample that ``reader[i]`` leaves out (variable-length names, None values in meta).
_NOT_COLLATABLE = ("bands", "labels", "meta")


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
    """Base class of the raw-dataset readers; holds the arguments every reader takes.

    Args:
        root: the dataset folder.
        bands: a band selection name (``"s2_10m_20m"``), a comma list or a sequence of band names.
        classes: the class set to label with (default: the reader's first).
        splits: only these splits (a sequence, or one name or a comma list as a string).
        on_bad: ``"raise"`` stops at the first bad patch; ``"skip"`` records it in ``bad`` and goes on.
        missing: listed patches absent on disk are counted in ``missing_from_disk`` (``"report"``) or are
            each a bad patch (``"error"``).
        transforms: a callable applied to the sample dict in ``__getitem__`` (as torchgeo datasets do).
        **options: the reader's own options, fields of its ``Options`` dataclass (converted by type, so
            command-line strings work too).

    Attributes set while indexing, by every reader: ``records``, ``bad``, ``split_source`` (where the splits
    came from), ``missing_from_disk`` (per split, non-zero counts only), ``excluded`` (patches on disk left
    out on purpose, by reason), ``unlisted`` (ids on disk that no split list names: split None).

    Subclasses set the class attributes and ``Options``, implement :meth:`_index` (list the patches, calling
    :meth:`_absent` for each listed patch not on disk) and :meth:`_read` (read one), and raise
    :class:`PatchError` for anything wrong with a patch.
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
    #: The reader's own options (a frozen dataclass); the instance is ``self.options``.
    Options: ClassVar[type] = NoOptions

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        bands: str | Sequence[str] | None = None,
        classes: str | None = None,
        splits: str | Sequence[str] | None = None,
        on_bad: OnBad = "raise",
        missing: Missing = "report",
        transforms: Callable[[Sample], Sample] | None = None,
        **options: Any,
    ) -> None:
        self.options = make_options(self.name, self.Options, options)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.name}: dataset folder {self.root} does not exist")
        if on_bad not in ("raise", "skip"):
            raise DatasetError(f"on_bad must be 'raise' or 'skip', not {on_bad!r}")
        if missing not in ("report", "error"):
            raise DatasetError(f"missing must be 'report' or 'error', not {missing!r}")
        if transforms is not None and not callable(transforms):
            raise DatasetError(f"transforms must be a callable on the sample dict, not {type(transforms).__name__}")
        self.on_bad: OnBad = on_bad
        self.missing: Missing = missing
        self.transforms = transforms
        try:
            self.bands = contract.resolve_bands(bands if bands is not None else self.default_bands)
        except contract.ContractError as err:
            raise DatasetError(f"{self.name}: {err}") from None
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
        self.splits = self._check_splits(splits)
        self.bad: list[BadPatch] = []
        self.split_source = ""
        self.missing_from_disk: dict[str, int] = {}
        self.excluded: dict[str, int] = {}
        self.unlisted: list[str] = []
        records = self._index()
        if self.splits is not None:
            records = [r for r in records if r.split in self.splits]
        self.records: list[PatchRecord] = records

    @staticmethod
    def _check_splits(splits: str | Sequence[str] | None) -> tuple[str, ...] | None:
        if splits is None:
            return None
        names = [s.strip() for s in splits.split(",")] if isinstance(splits, str) else list(splits)
        bad = [str(s) for s in names if s not in SPLITS]
        if bad or not names:
            raise DatasetError(f"unknown split(s) {', '.join(bad) or '(none given)'}; splits are {', '.join(SPLITS)}")
        return tuple(names)

    # ---- subclass interface -----------------------------------------------------------------------
    @abc.abstractmethod
    def _index(self) -> list[PatchRecord]:
        """List the patches. Use :meth:`_bad` for a broken one, :meth:`_absent` for a listed one not on disk."""

    @abc.abstractmethod
    def _read(self, record: PatchRecord, *, meta: bool = True) -> Sample:
        """Read one patch; raise :class:`PatchError` for anything wrong with it.

        ``meta=False`` (``reader[i]``, whose sample drops the meta) lets a reader skip work done only for the
        meta (BigEarthNet v1's country/season table, EuroSAT's georeferencing); the checks stay the same.
        """

    # ---- helpers for subclasses -------------------------------------------------------------------
    def _bad(self, err: PatchError) -> None:
        """Raise ``err``, or record it as a bad patch in skip mode."""
        if self.on_bad == "raise":
            raise err
        self.bad.append(BadPatch.from_error(err))

    def _wanted(self, split: str | None) -> bool:
        return self.splits is None or split in self.splits

    def _absent(self, patch_id: str, split: str, expected: str | os.PathLike, listed_in: str) -> None:
        """A patch listed in ``split`` (by ``listed_in``) that is not at ``expected``: the ``missing`` policy."""
        if not self._wanted(split):
            return
        if self.missing == "report":
            self._count_absent(split, 1)
        else:
            self._bad(PatchError(patch_id, expected, f"listed in the {split} split ({listed_in}) but absent on disk"))

    def _count_absent(self, split: str, n: int) -> None:
        """Count ``n`` absent listed patches of ``split`` at once (``missing="report"`` only)."""
        if n and self._wanted(split):
            counts = {**self.missing_from_disk, split: self.missing_from_disk.get(split, 0) + n}
            self.missing_from_disk = {s: counts[s] for s in SPLITS if s in counts}

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
        """The collate-safe sample (``id``, ``image``, ``label``, ...), after ``transforms``; see the module doc."""
        full = self._read(self.records[index], meta=False)
        sample = {k: v for k, v in full.items() if k not in _NOT_COLLATABLE}
        return self.transforms(sample) if self.transforms is not None else sample

    def read(self, index: int) -> Sample:
        """The full sample dict of patch ``index`` (names and meta included, no ``transforms``)."""
        return self._read(self.records[index])

    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def split_counts(self) -> dict[str, int]:
        """Patches per split in the index (``None`` for patches in no split)."""
        return dict(Counter(r.split for r in self.records))

    def iter_samples(self, progress: bool = False) -> Iterator[Sample]:
        """Yield every full sample; in skip mode a bad patch is recorded in ``self.bad`` and left out."""
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
    every damaged file, goes through rasterio, which also words the error. Whatever the bytes, the outcome
    is the array or a :class:`PatchError` naming the file (fuzzed in tests/datasets/test_fuzz_parsers.py).
    """
    from landzoo.datasets import rawtiff

    fast = rawtiff.read_plain_tiff(path) if rawtiff.ENABLED else None
    if fast is not None:  # read, so it exists: no stat needed on the fast path
        _check_array(fast, path, patch_id, shape=shape, dtypes=dtypes, count=count)
        return fast
    if not path.is_file():
        raise PatchError(patch_id, path, "file is missing")
    return _read_with_rasterio(path, patch_id, shape=shape, dtypes=dtypes, count=count)


def _read_with_rasterio(
    path: Path, patch_id: str, *, shape: tuple[int, int] | None, dtypes: tuple[str, ...], count: int
) -> np.ndarray:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # a damaged header: the error says it all
            with rasterio.open(path) as src:
                if src.count != count:
                    raise PatchError(patch_id, path, f"expected {count} band(s), file has {src.count}")
                if src.dtypes[0] not in dtypes:
                    raise PatchError(patch_id, path, f"expected dtype {'/'.join(dtypes)}, file has {src.dtypes[0]}")
                if shape is not None and (src.height, src.width) != tuple(shape):
                    size = f"expected {shape[0]}x{shape[1]} px, file has {src.height}x{src.width}"
                    raise PatchError(patch_id, path, size)
                return src.read()
    except PatchError:
        raise
    except (RasterioError, OSError, ValueError, MemoryError) as err:
        raise PatchError(patch_id, path, f"unreadable GeoTIFF ({_one_line(err)})") from None
    except Exception as err:  # GDAL's own errors (CPLE_*) are not RasterioError; all mean a damaged file
        if type(err).__module__.startswith("rasterio"):
            raise PatchError(patch_id, path, f"unreadable GeoTIFF ({_one_line(err)})") from None
        raise


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


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


def common_patch_px(paths: Sequence[Path], default: int, *, sample: int = 5) -> int:
    """The side, in pixels, of the square patches in ``paths``, from the headers of the first few files.

    Why: a dataset has one patch size (SEN12MS 256, EuroSAT 64), but copies and fixtures differ (torchgeo's
    SEN12MS fixtures are 64 px), so it is read from the data instead of asked for. The most common square
    size among the first ``sample`` readable files wins, so one damaged or odd file does not set it (every
    file is still checked against it when read); ``default`` when none of them is readable.
    """
    import rasterio

    sizes: Counter[int] = Counter()
    for path in paths:
        if sum(sizes.values()) >= sample:
            break
        try:
            with rasterio.open(path) as src:
                if src.width == src.height and src.width > 0:
                    sizes[src.width] += 1
        except Exception:
            continue
    return sizes.most_common(1)[0][0] if sizes else default


def read_lines(path: Path) -> list[str]:
    """Lines of a text list, stripped of ``\\r`` and blanks (CRLF and LF lists both occur)."""
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path}: not a UTF-8 text list ({err.reason} at byte {err.start})") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]
