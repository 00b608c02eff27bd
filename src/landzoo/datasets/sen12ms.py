"""SEN12MS reader (Schmitt et al. 2019) with the scene-classification labels of Schmitt & Wu 2021.

Layout: ``<root>/<season>/s2_<scene>/<season>_s2_<scene>_p<patch>.tif``. S1 (``s1_``) and LC (``lc_``)
patches sit in sibling folders under the same names. Every band is on one 10 m grid, so all S2 bands form one
``"10m"`` group and S1 its own ``"s1"`` group.

Labels come from ``IGBP_probability_labels.pkl``, a dict that maps each S2 file name to 17 IGBP coverage
fractions. The official ``classification/dataset.py`` reduces them to the simplified 10 classes, then
thresholds (multi-label, default 0.1) or takes the argmax (single label). ``label_source="lc"`` computes
the same fractions from band 1 (IGBP) of the LC patch for users who lack the pickle.

Splits come from the official ``train_list``/``test_list`` (txt with CRLF, or pkl). There is no official
validation split that is disjoint from train: the official ``val_list`` is drawn *from* train. Here whole
scenes are held out from train (``val_scenes``), seeded and deterministic.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from landzoo import contract
from landzoo.datasets.base import SPLITS, PatchRecord, Reader, Sample, common_patch_px, read_band_file, read_lines
from landzoo.datasets.errors import DatasetError, PatchError
from landzoo.datasets.pickles import UnsafePickleError, load_data_pickle

__all__ = [
    "KNOWN_BAD_PATCHES",
    "SEASONS",
    "SEN12MS",
    "fractions_to_labels",
    "igbp_fractions_from_lc",
    "parse_patch_name",
    "read_holdout_scenes",
    "read_split_list",
    "scene_of",
]

#: The four season folders, exactly as distributed (the ROI number is the random seed of the scene draw).
SEASONS: tuple[str, ...] = ("ROIs1158_spring", "ROIs1868_summer", "ROIs1970_fall", "ROIs2017_winter")
#: Patches the dataset authors know to be broken (NaN in S1); the official train list leaves this one out.
KNOWN_BAD_PATCHES: tuple[str, ...] = ("ROIs1868_summer_s2_146_p202",)
LABELS_FILE = "IGBP_probability_labels.pkl"
HOLDOUT_FILE = "SEN12MS_holdOutScenes.txt"

_NAME = re.compile(
    r"^(?P<season>ROIs\d{4}_(?:spring|summer|fall|winter))_s2_(?P<scene>\d+)_p(?P<patch>\d+)(?:\.tif)?$", re.ASCII
)
_SCENE = re.compile(r"^(?P<season>ROIs\d{4}_(?:spring|summer|fall|winter))/(?:s1|s2|lc)_(?P<scene>\d+)$", re.ASCII)
_PATCH_PX = 256
_S2_FILE_BANDS = 13
_S1_FILE_BANDS = 2
_LC_FILE_BANDS = 4


def parse_patch_name(name: str) -> tuple[str, int, int]:
    """``ROIs1158_spring_s2_1_p30[.tif]`` -> ``("ROIs1158_spring", 1, 30)``; a malformed name raises ValueError."""
    m = _NAME.match(os.path.basename(name.strip()))
    if m is None or m["season"] not in SEASONS:
        raise ValueError(f"{name!r} is not a SEN12MS S2 patch name like ROIs1158_spring_s2_1_p30.tif")
    return m["season"], int(m["scene"]), int(m["patch"])


def scene_of(name: str) -> str:
    """The scene (S2 folder) of a patch, ``"ROIs1158_spring/s2_1"``, globally unique unlike the scene number."""
    season, scene, _ = parse_patch_name(name)
    return f"{season}/s2_{scene}"


def _normalise_scene(scene: str) -> str:
    """Accept ``ROIs1158_spring/s1_63`` (holdOutScenes), ``.../s2_63`` (ValidationScenes) or ``.../lc_63``."""
    m = _SCENE.match(scene.strip().replace("\\", "/"))
    if m is None or m["season"] not in SEASONS:
        raise ValueError(f"{scene!r} is not a SEN12MS scene like ROIs1158_spring/s2_63")
    return f"{m['season']}/s2_{int(m['scene'])}"


def _scene_key(scene: str) -> tuple[int, int]:
    season, number = scene.split("/s2_")
    return SEASONS.index(season), int(number)


def read_split_list(path: str | os.PathLike) -> list[str]:
    """Patch names of an official split list: ``.txt`` (one S2 file name a line, CRLF) or ``.pkl`` (list[str])."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"sen12ms: split list {path} does not exist")
    if path.suffix == ".pkl":
        names = _unpickle(path, "split list")
        if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
            raise DatasetError(f"sen12ms: split list {path} is not a pickled list of file names")
        return [n.strip() for n in names if n.strip()]
    return read_lines(path)


def _unpickle(path: Path, what: str) -> Any:
    """A dataset pickle through the allow-list unpickler; every failure is a DatasetError naming the file."""
    try:
        return load_data_pickle(path)
    except UnsafePickleError as err:
        raise DatasetError(f"sen12ms: refusing {what} {path}: {err}") from None
    except Exception as err:  # unpickling can fail in many ways; all mean a damaged file
        raise DatasetError(f"sen12ms: cannot unpickle {what} {path} ({err})") from None


def read_holdout_scenes(path: str | os.PathLike) -> list[str]:
    """Scenes of ``SEN12MS_holdOutScenes.txt`` (the test scenes, written as S1 folders) as ``season/s2_<n>``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"sen12ms: hold-out scene list {path} does not exist")
    out = []
    for line in read_lines(path):
        try:
            out.append(_normalise_scene(line))
        except ValueError as err:
            raise DatasetError(f"sen12ms: {path}: {err}") from None
    return out


def igbp_fractions_from_lc(igbp: np.ndarray) -> np.ndarray:
    """IGBP coverage fractions (17, float64) of an LC band-1 array whose values must all be 1..17."""
    values = np.asarray(igbp).ravel().astype(np.int64)
    bad = (values < 1) | (values > len(contract.IGBP17))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} pixel(s) outside IGBP classes 1..17 (e.g. {int(values[bad][0])})")
    counts = np.bincount(values, minlength=len(contract.IGBP17) + 1)[1:]
    return counts / values.size


def fractions_to_labels(
    fractions: np.ndarray, class_set: str, *, threshold: float = 0.1, single_label: bool = False
) -> list[str]:
    """Class names of one patch from its 17 IGBP fractions, as the official ``dataset.py`` does it.

    ``sen12ms_simple10`` first sums the fractions into the simplified scheme. Multi-label keeps the classes
    whose fraction is ``>= threshold``; single-label keeps the argmax (first one on ties, like numpy).
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if class_set == "sen12ms_simple10":
        fractions = contract.igbp17_to_simple10(fractions)
    elif class_set != "igbp17":
        raise DatasetError(f"sen12ms cannot label with class set {class_set!r}")
    classes = contract.class_set(class_set)
    if fractions.shape != (len(classes),):
        raise ValueError(f"expected {len(classes)} fractions, got shape {fractions.shape}")
    if single_label:
        return [classes[int(np.argmax(fractions))]]
    return [c for c, f in zip(classes, fractions, strict=True) if f >= threshold]


def _first_existing(candidates: Sequence[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


class SEN12MS(Reader):
    """Random-access reader of a SEN12MS folder (S2, optional S1), labelled from the IGBP probability pickle.

    Takes the common arguments of :class:`Reader` and the fields of :class:`SEN12MS.Options`. Without any
    split list, ``holdout_scenes`` (``SEN12MS_holdOutScenes.txt``) makes its scenes the test split and the
    rest train; without that either, every patch has split None. Patches on disk that no list names get split
    None and are listed in ``reader.unlisted``. Attributes set while indexing, beside the common ones:
    ``labels_path``, ``split_lists``, ``val_scene_ids`` (the scenes moved to val), ``patch_px``.
    """

    @dataclasses.dataclass(frozen=True)
    class Options:
        """Options of the SEN12MS reader."""

        labels_path: Path | None = None
        """The label pickle; default ``ROOT/labels/IGBP_probability_labels.pkl``, then ``ROOT/...pkl``."""
        label_source: Literal["pickle", "lc"] = "pickle"
        """``pickle``: the IGBP probability pickle; ``lc``: the same fractions computed from the LC patches."""
        multilabel_threshold: float = 0.1
        """A class is a label where its (simplified) fraction is at least this (the official 0.1)."""
        single_label: bool = False
        """One label per patch, the argmax of the fractions (one-hot)."""
        train_list: Path | None = None
        """The train list (txt or pkl); default ``ROOT/splits/train_list.txt`` (or ``.pkl``, or in ``ROOT``)."""
        test_list: Path | None = None
        """The test list; default ``ROOT/splits/test_list.txt`` (or ``.pkl``, or in ``ROOT``)."""
        holdout_scenes: Path | None = None
        """``SEN12MS_holdOutScenes.txt``, used when there is no split list: its scenes are the test split."""
        val_scenes: int | float | tuple[str, ...] = 0
        """Scenes moved whole from train to val: a count, a fraction of the train scenes, or scene names
        (``ROIs1158_spring/s2_63``; on the command line separated by commas)."""
        seed: int = 2071
        """Seed of the val-scene draw (2071 as in the official code)."""
        patch_px: int | None = None
        """The patch side in pixels; default: read from the S2 files (256 in SEN12MS, 64 in torchgeo's fixtures)."""

        def __post_init__(self) -> None:
            if not 0.0 < self.multilabel_threshold <= 1.0:
                raise DatasetError(f"sen12ms: multilabel_threshold must be in (0, 1], not {self.multilabel_threshold}")
            if self.patch_px is not None and self.patch_px <= 0:
                raise DatasetError(f"sen12ms option patch_px: must be positive, not {self.patch_px}")

    name: ClassVar[str] = "sen12ms"
    available_bands: ClassVar[tuple[str, ...]] = (*contract.SEN12MS_S2_BANDS, *contract.S1_BANDS)
    default_bands: ClassVar[str] = "s2_10m_20m"
    class_sets: ClassVar[tuple[str, ...]] = ("sen12ms_simple10", "igbp17")
    native_groups: ClassVar[bool] = False
    options: Options

    # ---- index ------------------------------------------------------------------------------------
    def _scan_disk(self) -> dict[str, str]:
        """S2 patch id -> location (relative path) for every S2 tif on disk, checking names against folders."""
        found: dict[str, str] = {}
        for season in SEASONS:
            season_dir = self.root / season
            if not season_dir.is_dir():
                continue
            for folder in sorted(os.scandir(season_dir), key=lambda e: e.name):
                if not (folder.is_dir() and folder.name.startswith("s2_")):
                    continue
                for entry in os.scandir(folder.path):
                    if not entry.name.endswith(".tif"):
                        continue
                    stem = entry.name[: -len(".tif")]
                    location = f"{season}/{folder.name}/{entry.name}"
                    try:
                        ok = scene_of(stem) == f"{season}/{folder.name}"
                    except ValueError:
                        ok = False
                    if not ok:
                        self._bad(
                            PatchError(stem, entry.path, f"file name does not match its folder {season}/{folder.name}")
                        )
                        continue
                    found[stem] = location
        return found

    def _find_lists(self) -> dict[str, Path]:
        lists: dict[str, Path] = {}
        for split, arg in (("train", self.options.train_list), ("test", self.options.test_list)):
            if arg is not None:
                if not Path(arg).is_file():
                    raise DatasetError(f"sen12ms: {split} list {arg} does not exist")
                lists[split] = Path(arg)
                continue
            found = _first_existing(
                [d / f"{split}_list{ext}" for d in (self.root / "splits", self.root) for ext in (".txt", ".pkl")]
            )
            if found is not None:
                lists[split] = found
        return lists

    def _load_labels(self) -> None:
        self.labels_path: Path | None = None
        self._labels: Mapping[str, Any] = {}
        if self.options.label_source == "lc":
            return
        if self.options.labels_path is not None:
            path = self.options.labels_path
        else:
            default = self.root / "labels" / LABELS_FILE
            path = _first_existing([default, self.root / LABELS_FILE]) or default
        if not path.is_file():
            raise DatasetError(
                f"sen12ms: label file {path} does not exist (pass labels_path=, or label_source='lc' to label from "
                "the LC patches)"
            )
        labels = _unpickle(path, "label file")
        if not isinstance(labels, Mapping):
            raise DatasetError(f"sen12ms: label file {path} holds a {type(labels).__name__}, not a dict")
        self.labels_path = path
        self._labels = labels

    def _choose_val(self, train: list[str]) -> set[str]:
        """Scenes moved from train to val."""
        arg = self.options.val_scenes
        scenes = sorted({scene_of(n) for n in train}, key=_scene_key)
        if isinstance(arg, str) or (isinstance(arg, Sequence) and not isinstance(arg, bool)):
            names = [arg] if isinstance(arg, str) else list(arg)
            try:
                chosen = {_normalise_scene(s) for s in names}
            except ValueError as err:
                raise DatasetError(f"sen12ms: val_scenes: {err}") from None
            unknown = sorted(chosen - set(scenes), key=_scene_key)
            if unknown:
                raise DatasetError(f"sen12ms: val scene(s) {', '.join(unknown)} are not train scenes")
            return chosen
        if isinstance(arg, bool) or not isinstance(arg, int | float):
            raise DatasetError(f"sen12ms: val_scenes must be a count, a fraction or scene names, not {arg!r}")
        if isinstance(arg, float):
            if not 0.0 <= arg < 1.0:
                raise DatasetError(f"sen12ms: a val_scenes fraction must be in (0, 1), not {arg}")
            count = max(1, round(arg * len(scenes))) if arg > 0 else 0
        else:
            count = int(arg)
        if count == 0:
            return set()
        if not 0 < count < len(scenes):
            raise DatasetError(f"sen12ms: val_scenes={arg} but train has {len(scenes)} scene(s); keep at least one")
        rng = np.random.default_rng(self.options.seed)
        return {scenes[i] for i in rng.choice(len(scenes), size=count, replace=False)}

    def _assign_splits(self, on_disk: Mapping[str, str]) -> dict[str, list[str]]:
        """Split name -> patch ids (``"none"`` for patches in no split)."""
        self.split_lists = self._find_lists()
        by_split: dict[str, list[str]] = {}
        if self.split_lists:
            for split, path in self.split_lists.items():
                ids = []
                for name in read_split_list(path):
                    try:
                        parse_patch_name(name)
                    except ValueError as err:
                        raise DatasetError(f"sen12ms: {path}: {err}") from None
                    ids.append(os.path.basename(name).removesuffix(".tif"))
                dup = len(ids) - len(set(ids))
                if dup:
                    raise DatasetError(f"sen12ms: {path} names {dup} patch(es) more than once")
                by_split[split] = ids
            if "train" in by_split and "test" in by_split:
                both = set(by_split["train"]) & set(by_split["test"])
                if both:
                    raise DatasetError(
                        f"sen12ms: {len(both)} patch(es) are in both {self.split_lists['train']} and "
                        f"{self.split_lists['test']} (e.g. {min(both)})"
                    )
        else:
            holdout = self.options.holdout_scenes
            if holdout is None:
                holdout = _first_existing([self.root / "splits" / HOLDOUT_FILE, self.root / HOLDOUT_FILE])
            if holdout is not None:
                test_scenes = set(read_holdout_scenes(holdout))
                self.split_lists = {"test": holdout}
                by_split["test"] = [i for i in on_disk if scene_of(i) in test_scenes]
                by_split["train"] = [i for i in on_disk if scene_of(i) not in test_scenes]
        if "train" in by_split:
            val = self._choose_val(by_split["train"])
            self.val_scene_ids = tuple(sorted(val, key=_scene_key))
            by_split["val"] = [i for i in by_split["train"] if scene_of(i) in val]
            by_split["train"] = [i for i in by_split["train"] if scene_of(i) not in val]
        elif self.options.val_scenes not in (0, 0.0, (), []):
            raise DatasetError("sen12ms: val_scenes needs a train split, and no train list was found")
        listed = {i for ids in by_split.values() for i in ids}
        self.unlisted = [i for i in on_disk if i not in listed] if by_split else []
        by_split["none"] = self.unlisted if by_split else list(on_disk)
        return by_split

    def _index(self) -> list[PatchRecord]:
        self.val_scene_ids: tuple[str, ...] = ()
        self._load_labels()
        on_disk = self._scan_disk()
        by_split = self._assign_splits(on_disk)
        self.split_source = ", ".join(f"{s}={p}" for s, p in self.split_lists.items()) or "no split lists"
        if self.val_scene_ids:
            self.split_source += f"; val = {len(self.val_scene_ids)} whole train scene(s), seed {self.options.seed}"
        wanted = [*SPLITS, "none"] if self.splits is None else list(self.splits)
        records: list[PatchRecord] = []
        for split in wanted:
            for pid in sorted(by_split.get(split, []), key=lambda i: (_scene_key(scene_of(i)), parse_patch_name(i)[2])):
                season, scene, patch = parse_patch_name(pid)
                location = on_disk.get(pid, f"{season}/s2_{scene}/{pid}.tif")
                if pid not in on_disk:
                    self._absent(pid, split, self.root / location, str(self._list_of(split)))
                    continue
                if self.options.label_source == "pickle" and self._label_key(pid) is None:
                    self._bad(PatchError(pid, self.labels_path, "no entry in the label file"))
                    continue
                meta = {"season": season.split("_")[1], "scene": f"{season}/s2_{scene}", "patch": patch}
                records.append(PatchRecord(pid, None if split == "none" else split, location, meta))
        self.patch_px = self.options.patch_px or common_patch_px([self.root / r.location for r in records], _PATCH_PX)
        return records

    def _list_of(self, split: str) -> Path | str:
        """The list that put patches in ``split`` (val is drawn from the train list)."""
        return self.split_lists.get("train" if split == "val" else split, "split lists")

    def _label_key(self, pid: str) -> str | None:
        for key in (f"{pid}.tif", pid):
            if key in self._labels:
                return key
        return None

    # ---- read -------------------------------------------------------------------------------------
    def _sibling(self, record: PatchRecord, sensor: str) -> Path:
        """The S1 or LC file of an S2 patch (same season, scene and patch number)."""
        season, scene, patch = parse_patch_name(record.id)
        return self.root / season / f"{sensor}_{scene}" / f"{season}_{sensor}_{scene}_p{patch}.tif"

    def _read_s2(self, record: PatchRecord, names: Sequence[str]) -> np.ndarray:
        path = self.root / record.location
        arr = read_band_file(
            path, record.id, shape=(self.patch_px, self.patch_px), dtypes=("uint16", "int16"), count=_S2_FILE_BANDS
        )
        if arr.dtype == np.int16:
            negative = int((arr < 0).sum())
            if negative:
                raise PatchError(record.id, path, f"int16 S2 file has {negative} negative value(s)")
            arr = arr.astype(np.uint16)
        return arr[[contract.SEN12MS_S2_BANDS.index(n) for n in names]]

    def _read_s1(self, record: PatchRecord, names: Sequence[str]) -> np.ndarray:
        path = self._sibling(record, "s1")
        arr = read_band_file(
            path, record.id, shape=(self.patch_px, self.patch_px), dtypes=("float32",), count=_S1_FILE_BANDS
        )
        nan = int(np.isnan(arr).sum())
        if nan:
            known = " (a known bad patch of SEN12MS)" if record.id in KNOWN_BAD_PATCHES else ""
            raise PatchError(record.id, path, f"S1 has {nan} NaN value(s){known}")
        return arr[[contract.S1_BANDS.index(n) for n in names]]

    def _fractions(self, record: PatchRecord) -> np.ndarray:
        if self.options.label_source == "lc":
            path = self._sibling(record, "lc")
            lc = read_band_file(
                path, record.id, shape=(self.patch_px, self.patch_px), dtypes=("uint16", "int16"), count=_LC_FILE_BANDS
            )
            try:
                return igbp_fractions_from_lc(lc[0])
            except ValueError as err:
                raise PatchError(record.id, path, f"IGBP band: {err}") from None
        key = self._label_key(record.id)
        if key is None:
            raise PatchError(record.id, self.labels_path, "no entry in the label file")
        try:
            fractions = np.asarray(self._labels[key], dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise PatchError(record.id, self.labels_path, f"label entry is not numeric ({err})") from None
        if fractions.shape != (len(contract.IGBP17),) or not np.isfinite(fractions).all():
            raise PatchError(
                record.id,
                self.labels_path,
                f"label entry must be {len(contract.IGBP17)} finite fractions, got {fractions!r}",
            )
        return fractions

    def _read(self, record: PatchRecord, *, meta: bool = True) -> Sample:
        image: dict[str, np.ndarray] = {}
        for group, names in self.groups.items():
            image[group] = self._read_s1(record, names) if group == "s1" else self._read_s2(record, names)
        fractions = self._fractions(record)
        labels = fractions_to_labels(
            fractions,
            self.class_set_name,
            threshold=self.options.multilabel_threshold,
            single_label=self.options.single_label,
        )
        sample = self._sample(record, image, labels)
        sample["meta"]["igbp"] = fractions.astype(np.float32).tolist()
        return sample
