"""Checkpoints that carry their data contract: safetensors weights + a JSON sidecar.

Why: the paper's released checkpoints hold no record of their band order, and the code changed that
order silently afterwards (B04,B03,B02 became B02,B03,B04 with identical tensor shapes), so restoring
"worked" and swapped two bands. Here the weights never travel without the names of their input
channels and output classes, and loading refuses data in another order.

Layout (two forms, same content):

* ``<name>.safetensors`` + ``<name>.json`` (``save_checkpoint("run/model.safetensors", ...)``);
* a folder with ``model.safetensors`` + ``landzoo.json`` (``save_checkpoint("run/ckpt", ...)``); the
  folder written by ``landzoo export`` is of this form (plus ``config.json`` and a model card).

The sidecar (schema :data:`SCHEMA_VERSION`) holds the :class:`DataContract` (band names in channel
order, class set and class names in output order, per-band normalisation by band name, input size,
resampling mode), the architecture name and its keyword arguments, the training config, the final
metrics, the landzoo version and git commit, and the SHA-256 of the weights file (a weights file
paired with the wrong sidecar, or damaged, is refused). The safetensors header repeats the band
order and class set, so the bare weights file still says what it expects.

The sidecar is sealed (schema 2): its ``seal.sha256`` is the SHA-256 of the rest of the file in canonical JSON,
so an edit of anything in it (a normalisation constant, a band or class name, the architecture options) is
refused when it is loaded, instead of silently changing what the model computes. Weights files are
byte-reproducible: the same tensors and contract give the same bytes (the safetensors header is written with
sorted keys).

Non-finite floats (e.g. an undefined AUROC) are written as JSON ``null``, so the files parse everywhere.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import math
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import __version__, contract
from landzoo.contract import ContractError
from landzoo.errors import LandzooError
from landzoo.files import atomic_write, os_error_message, seal_mismatch, sealed

__all__ = [
    "FOLDER_SIDECAR",
    "FOLDER_WEIGHTS",
    "RESAMPLE_MODES",
    "SCHEMA_VERSION",
    "CheckpointError",
    "CheckpointMeta",
    "ContractMismatchError",
    "DataContract",
    "build_model_from_checkpoint",
    "checkpoint_paths",
    "file_sha256",
    "git_commit",
    "load_checkpoint",
    "read_meta",
    "safetensors_bytes",
    "save_checkpoint",
    "write_json",
    "write_sidecar",
]

#: Version of the sidecar layout; a reader refuses a newer one. 2: the sidecar carries a seal.
SCHEMA_VERSION = 2
#: File names inside a checkpoint folder.
FOLDER_WEIGHTS = "model.safetensors"
FOLDER_SIDECAR = "landzoo.json"
#: Resampling modes a contract may name (those of :func:`landzoo.transforms.resample`).
RESAMPLE_MODES = ("bicubic", "torch-bicubic", "bilinear", "nearest", "area")
_FORMAT = "landzoo-checkpoint"


class CheckpointError(LandzooError):
    """A checkpoint that cannot be written or read: missing file, damaged weights, incomplete sidecar."""


class ContractMismatchError(ContractError):
    """The data offered to a checkpoint has other bands or classes (or another order) than it was trained on."""


# --------------------------------------------------------------------------------------------------
# the data contract
# --------------------------------------------------------------------------------------------------


def _names(items: Sequence[str]) -> str:
    return ",".join(items)


def _class_names(items: Sequence[str]) -> str:
    # class names contain commas ("Moors, heathland and ..."), so quote each
    return "; ".join(repr(c) for c in items)


def _order_mismatch(kind: str, ours: tuple[str, ...], theirs: tuple[str, ...], fmt: Any) -> str | None:
    """One-line description of how ``theirs`` differs from ``ours`` (None when equal)."""
    if ours == theirs:
        return None
    both = f"checkpoint {kind} {fmt(ours)} vs data {fmt(theirs)}"
    if set(ours) == set(theirs) and len(ours) == len(theirs):
        i = next(i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b)
        return (
            f"{kind} order differs: {both} (same {len(ours)} {kind}, permuted; first difference at position {i}: "
            f"checkpoint {ours[i]!r} vs data {theirs[i]!r}); read the data in the checkpoint's order"
        )
    parts = []
    missing = [x for x in ours if x not in theirs]
    extra = [x for x in theirs if x not in ours]
    if missing:
        parts.append(f"data lacks {fmt(missing)}")
    if extra:
        parts.append(f"data has extra {fmt(extra)}")
    if not parts:
        parts.append(f"data repeats {fmt(sorted({x for x in theirs if theirs.count(x) > 1}))}")
    return f"{kind} differ: {both} ({'; '.join(parts)})"


@dataclass(frozen=True)
class DataContract:
    """What a model's input channels and outputs mean, by name.

    ``bands``: band names in channel order. ``class_set``: a name of :data:`landzoo.contract.CLASS_SETS`,
    and ``classes`` must be exactly that set in its order (a reordered class list would be a silent
    relabelling). ``stats``: per-band ``(mean, std)`` by band name (only the contract's bands are kept;
    defaults to :data:`landzoo.contract.BEN_BAND_STATS`). ``input_size``: the model's square input side in
    pixels. ``resample``: how band groups are brought to ``input_size`` (:data:`RESAMPLE_MODES`). ``native``:
    the model is fed band groups at their native resolution (BigEarthNet: 10 m at 120 px, 20 m at 60 px, ...)
    rather than all bands on one 10 m grid (SEN12MS and EuroSAT ship them so); it decides how a rebuilt
    model groups its input bands, so a transferred model must keep it.
    """

    bands: tuple[str, ...]
    class_set: str
    classes: tuple[str, ...]
    stats: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    input_size: int = 120
    resample: str = "bicubic"
    native: bool = True

    def __post_init__(self) -> None:
        if not self.bands:
            raise ContractError("a data contract needs band names (the channel order of the model's first layer)")
        bands = contract.resolve_bands(tuple(self.bands))
        expected = contract.class_set(self.class_set)
        classes = tuple(self.classes)
        if classes != expected:
            msg = _order_mismatch("classes", expected, classes, _class_names)
            raise ContractError(f"class set {self.class_set!r} is not given in its order: {msg}")
        stats_in = dict(self.stats) if self.stats else dict(contract.BEN_BAND_STATS)
        missing = [b for b in bands if b not in stats_in]
        if missing:
            raise ContractError(f"the data contract lacks normalisation statistics for band(s) {_names(missing)}")
        stats: dict[str, tuple[float, float]] = {}
        for b in bands:
            v = stats_in[b]
            mean, std = (v["mean"], v["std"]) if isinstance(v, Mapping) else tuple(v)
            mean, std = float(mean), float(std)
            if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise ContractError(
                    f"band {b}: normalisation needs a finite mean and a positive std, got {mean}, {std}"
                )
            stats[b] = (mean, std)
        size = int(self.input_size)
        if size != self.input_size or size <= 0:
            raise ContractError(f"input size must be a positive integer, got {self.input_size!r}")
        if self.resample not in RESAMPLE_MODES:
            raise ContractError(f"unknown resampling mode {self.resample!r}; known: {', '.join(RESAMPLE_MODES)}")
        object.__setattr__(self, "bands", bands)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "stats", stats)
        object.__setattr__(self, "input_size", size)
        object.__setattr__(self, "native", bool(self.native))

    @classmethod
    def from_names(
        cls,
        bands: str | Sequence[str],
        class_set: str,
        input_size: int,
        *,
        resample: str = "bicubic",
        stats: Mapping[str, tuple[float, float]] | None = None,
        native: bool = True,
    ) -> DataContract:
        """Build from a band selection (``"s2_10m_20m"`` or names) and a class-set name; stats from the contract."""
        names = contract.resolve_bands(bands)
        return cls(names, class_set, contract.class_set(class_set), dict(stats or {}), input_size, resample, native)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (stats as ``{band: {"mean", "std"}}``)."""
        return {
            "bands": list(self.bands),
            "class_set": self.class_set,
            "classes": list(self.classes),
            "stats": {b: {"mean": m, "std": s} for b, (m, s) in self.stats.items()},
            "input_size": self.input_size,
            "resample": self.resample,
            "native": self.native,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "data contract") -> DataContract:
        """Inverse of :meth:`to_dict`; a contract without band names is refused, naming ``source``."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{source}: the data contract is not a JSON object")
        if not data.get("bands"):
            raise CheckpointError(
                f"{source} has no band names in its data contract: refusing it, since the channel order of its "
                "first layer cannot be checked against the data"
            )
        missing = [k for k in ("class_set", "classes", "stats", "input_size") if k not in data]
        if missing:
            raise CheckpointError(f"{source}: the data contract lacks {', '.join(missing)}")
        try:
            return cls(
                bands=tuple(data["bands"]),
                class_set=data["class_set"],
                classes=tuple(data["classes"]),
                stats=data["stats"],
                input_size=data["input_size"],
                resample=data.get("resample", "bicubic"),
                native=data.get("native", True),  # checkpoints written before the field were all BigEarthNet
            )
        except ContractError as err:
            raise ContractError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{source}: malformed data contract ({err})") from None

    def check_compatible(
        self, data_bands: str | Sequence[str], data_classes: str | Sequence[str] | None = None
    ) -> None:
        """Refuse data whose bands or classes differ from this contract, in names or in order.

        ``data_bands``: a band selection name, a comma list or a sequence of names, in the data's channel
        order. ``data_classes``: a class-set name or the class names in the data's label order (None: not
        checked, e.g. for unlabelled prediction). Raises :class:`ContractMismatchError` with one line naming
        both orders and whether it is a permutation or missing/extra entries.
        """
        if isinstance(data_bands, str):
            theirs = contract.BAND_SELECTIONS.get(data_bands) or tuple(b.strip() for b in data_bands.split(","))
        else:
            theirs = tuple(data_bands)
        msg = _order_mismatch("bands", self.bands, theirs, _names)
        if msg:
            raise ContractMismatchError(msg)
        if data_classes is None:
            return
        cls_theirs = contract.class_set(data_classes) if isinstance(data_classes, str) else tuple(data_classes)
        msg = _order_mismatch("classes", self.classes, cls_theirs, _class_names)
        if msg:
            raise ContractMismatchError(f"{msg} (checkpoint class set {self.class_set})")

    def normalisation(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std vectors (float32) in channel order."""
        mean = np.array([self.stats[b][0] for b in self.bands], dtype=np.float32)
        std = np.array([self.stats[b][1] for b in self.bands], dtype=np.float32)
        return mean, std


# --------------------------------------------------------------------------------------------------
# the sidecar
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointMeta:
    """Everything in a checkpoint except the tensors (the sidecar, parsed and validated)."""

    contract: DataContract
    arch: str
    arch_kwargs: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    landzoo_version: str
    git_commit: str | None
    git_dirty: bool | None
    created: str
    weights_sha256: str
    num_tensors: int
    num_values: int
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The sidecar JSON object."""
        return {
            "format": _FORMAT,
            "schema_version": self.schema_version,
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "contract": self.contract.to_dict(),
            "config": self.config,
            "metrics": self.metrics,
            "weights": {"sha256": self.weights_sha256, "num_tensors": self.num_tensors, "num_values": self.num_values},
            "landzoo_version": self.landzoo_version,
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> CheckpointMeta:
        """Parse a sidecar object; anything missing or from a newer schema is a :class:`CheckpointError`."""
        if not isinstance(data, Mapping) or data.get("format") != _FORMAT:
            raise CheckpointError(f'{source} is not a landzoo checkpoint sidecar (no "format": "{_FORMAT}")')
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise CheckpointError(f"{source}: no schema_version")
        if version > SCHEMA_VERSION:
            raise CheckpointError(
                f"{source} was written with checkpoint schema {version}, newer than this landzoo's "
                f"{SCHEMA_VERSION}: upgrade landzoo"
            )
        if "contract" not in data:
            raise CheckpointError(
                f"{source} has no data contract (no band names): refusing it, since the channel order of its "
                "first layer cannot be checked against the data"
            )
        dc = DataContract.from_dict(data["contract"], source=str(source))
        weights = data.get("weights") or {}
        if not isinstance(data.get("arch"), str) or not data["arch"]:
            raise CheckpointError(f"{source}: no architecture name")
        if not isinstance(weights.get("sha256"), str):
            raise CheckpointError(f"{source}: no weights checksum")
        return cls(
            contract=dc,
            arch=data["arch"],
            arch_kwargs=dict(data.get("arch_kwargs") or {}),
            config=dict(data.get("config") or {}),
            metrics=dict(data.get("metrics") or {}),
            landzoo_version=str(data.get("landzoo_version", "")),
            git_commit=data.get("git_commit"),
            git_dirty=data.get("git_dirty"),
            created=str(data.get("created", "")),
            weights_sha256=weights["sha256"],
            num_tensors=int(weights.get("num_tensors", 0)),
            num_values=int(weights.get("num_values", 0)),
            schema_version=version,
        )


def _jsonable(obj: Any, where: str) -> Any:
    """A JSON-native copy of ``obj`` (non-finite floats -> None); anything else is refused, naming its key."""
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return _jsonable(obj.item(), where)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    if isinstance(obj, enum.Enum):
        return _jsonable(obj.value, where)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj), where)
    try:
        import torch

        if isinstance(obj, torch.Tensor):
            return _jsonable(obj.detach().cpu().tolist(), where)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str | int | float):
                raise CheckpointError(f"cannot store {where}: key {k!r} is not a string")
            out[str(k)] = _jsonable(v, f"{where}.{k}")
        return out
    if isinstance(obj, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, set | frozenset):
        return sorted(_jsonable(v, where) for v in obj)
    raise CheckpointError(f"cannot store {where} in a checkpoint: {type(obj).__name__} is not JSON data")


def git_commit() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the landzoo source checkout, or (None, None) when not running from one.

    Only a git work tree that actually contains this package counts (an installed landzoo inside some
    other repository must not report that repository's commit).
    """
    pkg = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=pkg, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or (Path(top) / "src" / "landzoo" / "__init__.py").resolve().parent != pkg:
        return None, None
    commit = git("rev-parse", "HEAD")
    if not commit or not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


# --------------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------------


def checkpoint_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(weights file, sidecar) for a checkpoint path: ``x.safetensors``, ``x.json`` or a folder.

    A folder uses ``model.safetensors`` + ``landzoo.json``; an existing folder holding ``model.json``
    but no ``landzoo.json`` (a training run folder) uses that.
    """
    p = Path(path)
    if p.suffix == ".safetensors":
        return p, p.with_suffix(".json")
    if p.suffix == ".json":
        return p.with_suffix(".safetensors"), p
    sidecar = p / FOLDER_SIDECAR
    if not sidecar.exists() and (p / "model.json").exists():
        sidecar = p / "model.json"
    return p / FOLDER_WEIGHTS, sidecar


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex), read in 4 MiB chunks: what checkpoints and transfer runs are keyed by."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def write_sidecar(path: Path, doc: Mapping[str, Any]) -> None:
    """Write a sidecar with its seal: the only way landzoo writes one (``save_checkpoint``, ``export``)."""
    write_json(path, sealed(doc))


def check_seal(data: Mapping[str, Any], source: str) -> None:
    """Refuse a sidecar whose content is not what was written (schema 2 and later must carry a seal)."""
    problem = seal_mismatch(data)
    if problem == "absent":
        version = data.get("schema_version")
        if isinstance(version, int) and version >= 2:
            raise CheckpointError(f"{source}: its seal was removed; the sidecar cannot be trusted")
        return  # schema 1, written before sidecars were sealed
    if problem is not None:
        raise CheckpointError(
            f"{source} was edited or damaged after it was written ({problem}): its data contract (band and class "
            "order, normalisation) cannot be trusted; use the file as training or export wrote it"
        )


def safetensors_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str]) -> bytes:
    """The safetensors file for ``tensors``, byte-reproducible: the header's keys sorted.

    (safetensors serialises its metadata from a hash map, so two saves of the same tensors differ in the
    order of the header's metadata keys.) The header keeps its length: it is re-serialised compactly, as
    safetensors writes it, and padded with spaces as safetensors pads it for alignment.
    """
    from safetensors.torch import save

    raw = save(dict(tensors), metadata=dict(metadata))
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    canon = {"__metadata__": dict(sorted(header.pop("__metadata__", {}).items()))}
    canon.update(sorted(header.items()))
    text = json.dumps(canon, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(text) > n:  # pragma: no cover - the same keys and values cannot grow
        raise CheckpointError("cannot canonicalise the safetensors header")
    return raw[:8] + text + b" " * (n - len(text)) + raw[8 + n :]


def _tensors(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """CPU, contiguous, unshared tensors (safetensors refuses shared storage: tied weights are cloned)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for k, v in state_dict.items():
        if not isinstance(k, str):
            raise CheckpointError(f"state dict key {k!r} is not a string")
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"state dict entry {k!r} is a {type(v).__name__}, not a tensor")
        if v.layout != torch.strided:
            raise CheckpointError(f"state dict entry {k!r} is a {v.layout} tensor; only dense tensors can be stored")
        t = v.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() and key in seen:
            t = t.clone()
        elif t.numel():
            seen.add(key)
        out[k] = t
    return out


def save_checkpoint(
    path: str | os.PathLike,
    model_state_dict: Mapping[str, Any],
    contract: DataContract | Mapping[str, Any],
    *,
    arch: str,
    arch_kwargs: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Write weights + sidecar (see the module docstring for the two layouts); returns the weights path.

    The weights go first, then the sidecar (each via temp file + rename), so a crash leaves either the
    old checkpoint, or new weights that the old sidecar's checksum refuses, never a silent mix.
    """
    dc = contract if isinstance(contract, DataContract) else DataContract.from_dict(contract, source="contract")
    if not isinstance(arch, str) or not arch:
        raise CheckpointError("save_checkpoint needs the architecture name (arch=...)")
    weights_path, sidecar_path = checkpoint_paths(path)
    if Path(path).suffix not in (".safetensors", ".json"):
        sidecar_path = weights_path.parent / FOLDER_SIDECAR
    tensors = _tensors(model_state_dict)
    if not tensors:
        raise CheckpointError("refusing to save an empty state dict")
    header = {
        "format": "pt",
        "landzoo_schema_version": str(SCHEMA_VERSION),
        "landzoo_arch": arch,
        "landzoo_bands": _names(dc.bands),
        "landzoo_class_set": dc.class_set,
        "landzoo_num_classes": str(len(dc.classes)),
    }
    doc_fields = {
        "arch_kwargs": _jsonable(dict(arch_kwargs or {}), "arch_kwargs"),
        "config": _jsonable(dict(config or {}), "config"),
        "metrics": _jsonable(dict(metrics or {}), "metrics"),
    }
    data = safetensors_bytes(tensors, header)
    try:
        atomic_write(weights_path, lambda p: p.write_bytes(data))
    except OSError as err:
        raise CheckpointError(f"cannot write {weights_path}: {os_error_message(err)}") from None
    commit, dirty = git_commit()
    meta = CheckpointMeta(
        contract=dc,
        arch=arch,
        landzoo_version=__version__,
        git_commit=commit,
        git_dirty=dirty,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        weights_sha256=file_sha256(weights_path),
        num_tensors=len(tensors),
        num_values=sum(t.numel() for t in tensors.values()),
        **doc_fields,
    )
    sidecar = meta.to_dict()
    sidecar["weights"]["file"] = weights_path.name
    try:
        write_sidecar(sidecar_path, sidecar)
    except OSError as err:
        raise CheckpointError(f"cannot write {sidecar_path}: {os_error_message(err)}") from None
    return weights_path


def read_meta(path: str | os.PathLike, *, verify: bool = True) -> CheckpointMeta:
    """The validated sidecar of a checkpoint, without loading tensors; ``verify`` checks the weights' SHA-256."""
    weights_path, sidecar_path = checkpoint_paths(path)
    if not weights_path.is_file():
        given = Path(path)
        if given.suffix == ".ckpt" or (given / "checkpoints").is_dir():
            # a Lightning training checkpoint is never unpickled here: this reads safetensors + JSON only
            raise CheckpointError(
                f"checkpoint {path} is a training checkpoint (.ckpt) or an unfinished run folder; this reads only "
                "model.safetensors + its JSON sidecar, which `landzoo fit` writes when the run finishes "
                "(`landzoo test`/`predict` also read a run's .ckpt, safely)"
            )
        raise CheckpointError(f"checkpoint {path}: weights file {weights_path} not found")
    if not sidecar_path.is_file():
        raise CheckpointError(
            f"checkpoint {path}: no sidecar {sidecar_path.name} beside {weights_path.name}, so no data contract "
            "(band and class order): refusing to load weights whose inputs cannot be checked"
        )
    try:
        data = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint sidecar {sidecar_path} is unreadable: {err}") from None
    if isinstance(data, Mapping):
        check_seal(data, str(sidecar_path))
    meta = CheckpointMeta.from_dict(data, source=str(sidecar_path))
    if verify:
        digest = file_sha256(weights_path)
        if digest != meta.weights_sha256:
            raise CheckpointError(
                f"checkpoint {path}: {weights_path.name} does not match its sidecar {sidecar_path.name} "
                f"(sha256 {digest[:12]}... vs recorded {meta.weights_sha256[:12]}...): damaged or mismatched files"
            )
    return meta


def load_checkpoint(path: str | os.PathLike, *, verify: bool = True) -> tuple[dict[str, Any], CheckpointMeta]:
    """``(state_dict, meta)`` of a checkpoint written by :func:`save_checkpoint` (CPU tensors)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    meta = read_meta(path, verify=verify)
    weights_path, _ = checkpoint_paths(path)
    try:
        with safe_open(str(weights_path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(weights_path)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"checkpoint weights {weights_path} are unreadable: {err}") from None
    hb = header.get("landzoo_bands")
    if hb is not None and hb != _names(meta.contract.bands):
        raise CheckpointError(
            f"checkpoint {path}: the weights header says bands {hb} but the sidecar says {_names(meta.contract.bands)}"
        )
    # an export folder (landzoo.export) stores the backbone's own keys, as timm loads them: give the model's keys
    prefix = header.get("landzoo_key_prefix")
    if prefix:
        state = {prefix + k: v for k, v in state.items()}
    return state, meta


def build_model_from_checkpoint(path: str | os.PathLike, *, strict: bool = True) -> tuple[Any, CheckpointMeta]:
    """Build the zoo model a checkpoint names and load its weights (imports :mod:`landzoo.models` lazily)."""
    state, meta = load_checkpoint(path)
    try:
        from landzoo.models import create_model
    except ImportError as err:  # pragma: no cover - the zoo is part of landzoo
        raise CheckpointError(f"cannot build {meta.arch!r}: the model zoo is unavailable ({err})") from None
    dc = meta.contract
    # the input stem normalises with the checkpoint's statistics and groups bands as it was trained to
    model = create_model(
        meta.arch,
        bands=dc.bands,
        classes=dc.class_set,
        native=dc.native,
        stats=dc.stats,
        resample=dc.resample,
        **meta.arch_kwargs,
    )
    for attr, want in (("bands", dc.bands), ("classes", dc.classes), ("input_size", dc.input_size)):
        got = getattr(model, attr, None)
        if got is not None and (tuple(got) if isinstance(got, list | tuple) else got) != want:
            raise ContractMismatchError(
                f"checkpoint {path}: rebuilt {meta.arch} has {attr} {got}, the checkpoint {want}"
            )
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit {meta.arch} with {meta.arch_kwargs}: {' '.join(first[:3])}"
        ) from None
    return model, meta
