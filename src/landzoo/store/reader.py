"""Reading a store: :class:`Store` (manifest + index), :class:`StoreDataset` (batches of torch tensors), the sampler.

Speed comes from reading whole batches: the indices of a batch are sorted, split by shard, and each band
group of each shard touched is gathered with one ``np.take`` from the memory-mapped ``.npy`` straight into the
batch tensor (one copy). A per-sample ``__getitem__`` plus ``default_collate`` would pay a Python round trip and
a second copy (the stack) per patch.

Memory: memory-mapped pages that were read count in a process' RSS (as shared file pages, reclaimable page
cache). So that a reading process does not grow with the store, the mappings are told to drop their pages
(``madvise(MADV_DONTNEED)``; the kernel page cache keeps them) every ``release_bytes`` read, unless the whole
split is no larger than ``release_bytes``: then RSS is bounded by ``release_bytes`` anyway, and dropping the
pages would only make every later read fault them back in (a quarter of the throughput on a small store).
Preloading (``mode="ram"`` or ``"device"``) copies the split once into one tensor per group instead.
"""

from __future__ import annotations

import itertools
import mmap
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from landzoo import contract
from landzoo.files import seal_mismatch
from landzoo.store.format import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    MANIFEST_FILE,
    PLAN_FILE,
    DamagedRecordError,
    GroupSpec,
    StoreError,
    read_json,
    record_checksum,
    sha256_hex,
    shard_file,
)

__all__ = ["VERIFY_MODES", "Store", "StoreBatchSampler", "StoreDataset", "Verify", "batch_plan", "check_store_folder"]

Mode = Literal["mmap", "ram", "device"]
Verify = Literal["once", "always", "off"]
#: What each ``verify`` setting does (the CLI and docs quote it).
VERIFY_MODES: dict[str, str] = {
    "once": "each record's CRC-32 is checked the first time this process reads it (default)",
    "always": "every read is checked",
    "off": "no check (only `landzoo verify` finds damage)",
}


#: File suffixes of images and scenes: given where a store is expected, they get a pointer to ``landzoo map``.
_IMAGE_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".zip", ".safe")


def check_store_folder(path: str | os.PathLike) -> Path:
    """``path`` if it is a complete store folder; otherwise a :class:`StoreError` saying what it is instead.

    A user may pass a GeoTIFF or a scene (to be mapped), a raw dataset folder (to be encoded), an interrupted
    encode (to be finished) or a typo: each gets the message that tells the next step.
    """
    p = Path(path)
    if p.is_file() or p.suffix.lower() == ".safe":
        hint = (
            f"to classify an image or a Sentinel-2 scene, use `landzoo map CHECKPOINT {p} --out DIR`"
            if p.name.lower().endswith(_IMAGE_SUFFIXES)
            else "a store is the folder `landzoo encode` writes"
        )
        raise StoreError(f"{p} is a file, not a landzoo store; {hint}")
    if not p.is_dir():
        raise StoreError(f"data store {p} does not exist; build one with `landzoo encode`")
    if (p / MANIFEST_FILE).is_file():
        return p
    if (p / PLAN_FILE).is_file():
        raise StoreError(
            f"{p} is an unfinished landzoo store (an encode was interrupted): run the same `landzoo encode` "
            "command again to finish it"
        )
    raw = (
        next(iter(p.glob("*.tif")), None)
        or next(iter(p.glob("*/*.tif")), None)
        or next(iter(p.glob("*/*/*.tif")), None)
    )
    if raw is not None or (p / "metadata.parquet").is_file():
        raise StoreError(
            f"{p} is a raw dataset folder, not a store: encode it first with "
            f"`landzoo encode --dataset NAME {p} --out STORE` and pass the store"
        )
    raise StoreError(f"{p} is not a landzoo store (it has no {MANIFEST_FILE}); build one with `landzoo encode`")


class Store:
    """An encoded store opened for reading: its manifest (the data contract) and its index as arrays."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = check_store_folder(path)
        m = read_json(self.path / MANIFEST_FILE)
        if m.get("format") != FORMAT or not isinstance(m.get("format_version"), int):
            raise StoreError(f"{self.path / MANIFEST_FILE} is not a {FORMAT} manifest")
        if m["format_version"] > FORMAT_VERSION:
            raise StoreError(
                f"{self.path} is store format version {m['format_version']}; this landzoo reads up to {FORMAT_VERSION}"
            )
        problem = seal_mismatch(m)
        if problem == "absent" and m["format_version"] >= 2:
            raise StoreError(f"{self.path / MANIFEST_FILE}: its seal was removed; the manifest cannot be trusted")
        if problem not in (None, "absent"):  # format 1 stores (before seals) have none
            raise StoreError(
                f"{self.path / MANIFEST_FILE} was edited or damaged after encoding ({problem}): its band, class or "
                "shard descriptions no longer match the data; restore it or re-encode the store"
            )
        self.manifest: dict[str, Any] = m
        self.dataset: str = m["dataset"]
        self.bands: tuple[str, ...] = tuple(m["bands"])
        self.native_groups: bool = bool(m["native_groups"])
        # JSON objects are written with sorted keys: the group order (band order, checksum chain) is explicit
        order = m.get("group_order", list(m["groups"]))
        if sorted(order) != sorted(m["groups"]):
            raise StoreError(
                f"{self.path / MANIFEST_FILE}: group_order {order} does not match groups {sorted(m['groups'])}"
            )
        self.groups: dict[str, GroupSpec] = {g: GroupSpec.from_json(g, m["groups"][g]) for g in order}
        self.class_set: str = m["class_set"]
        self.classes: tuple[str, ...] = tuple(m["classes"])
        self.shards: list[dict[str, Any]] = m["shards"]
        self.shard_names: list[str] = [s["name"] for s in self.shards]
        self._load_index()

    def _load_index(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = self.path / INDEX_FILE
        try:
            data = path.read_bytes()
            recorded = self.manifest.get("index_sha256")
            if recorded is not None and sha256_hex(data) != recorded:
                raise StoreError(
                    f"{path} does not match the SHA-256 its manifest records (edited or damaged): its labels or "
                    "record positions cannot be trusted; restore it or re-encode the store"
                )
            table = pq.read_table(pa.BufferReader(data))
        except (OSError, ValueError) as err:
            raise StoreError(f"{path} is missing or unreadable ({err})") from None
        need = {"id", "split", "label", "shard", "offset", "checksum"}
        if not need <= set(table.column_names):
            raise StoreError(f"{path} lacks column(s) {', '.join(sorted(need - set(table.column_names)))}")
        self.table = table
        n = table.num_rows
        self.ids: np.ndarray = np.asarray(table.column("id").to_pylist(), dtype=object)
        self.split: np.ndarray = np.asarray(table.column("split").to_pylist(), dtype=object)
        pos = {name: k for k, name in enumerate(self.shard_names)}
        shard_col = table.column("shard").to_pylist()
        unknown = sorted(set(shard_col) - set(pos))
        if unknown:
            raise StoreError(f"{path} refers to shard(s) {', '.join(unknown)} that the manifest does not list")
        self.shard_of: np.ndarray = np.fromiter((pos[s] for s in shard_col), dtype=np.int64, count=n)
        self.offset: np.ndarray = table.column("offset").to_numpy().astype(np.int64)
        # an offset outside its shard would be clipped by the gather into another patch's pixels: refuse it here
        capacity = np.array([int(s["capacity"]) for s in self.shards], dtype=np.int64)
        bad = np.flatnonzero((self.offset < 0) | (self.offset >= capacity[self.shard_of])) if n else []
        if len(bad):
            k = int(bad[0])
            raise StoreError(
                f"{path}: patch {self.ids[k]} has offset {self.offset[k]} outside shard {shard_col[k]} "
                f"(capacity {capacity[self.shard_of[k]]}); {len(bad)} row(s) so damaged: re-encode the store"
            )
        self.checksum: np.ndarray = table.column("checksum").to_numpy().astype(np.uint32)
        label = table.column("label").combine_chunks()
        if n and len(label.values) != n * len(self.classes):
            raise StoreError(
                f"{path}: the label column holds {len(label.values) / n:g} values per patch, the manifest names "
                f"{len(self.classes)} classes: the index does not belong to this store"
            )
        self.labels: np.ndarray = label.values.to_numpy(zero_copy_only=False).reshape(n, len(self.classes))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def split_names(self) -> list[str]:
        return sorted({s or "none" for s in self.split})

    def rows(self, split: str | None = None) -> np.ndarray:
        """Index rows of one split (``None``: all; ``"none"``: patches in no split), in store order."""
        if split is None:
            return np.arange(len(self.ids))
        want = None if split == "none" else split
        rows = np.flatnonzero(self.split == want) if want is not None else np.flatnonzero(self.split == None)  # noqa: E711
        if len(rows) == 0:
            raise StoreError(
                f"store {self.path} has no patches in split {split!r}; it has {', '.join(self.split_names)}"
            )
        return rows

    def shard_path(self, shard: int, group: str) -> Path:
        return shard_file(self.path, self.shard_names[shard], group)

    def open_shard(self, shard: int, group: str, patch_id: str) -> np.memmap:
        """Memory-map one group file of one shard, checked against the manifest (size, shape, dtype)."""
        path = self.shard_path(shard, group)
        spec = self.groups[group]
        info = self.shards[shard]
        expected = int(info["files"][group]["bytes"])
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise DamagedRecordError(patch_id, path, "its shard file is missing") from None
        if size != expected:
            raise DamagedRecordError(
                patch_id, path, f"its shard file is truncated or resized ({size} bytes, expected {expected})"
            )
        try:
            mm = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise DamagedRecordError(patch_id, path, f"its shard file is unreadable ({err})") from None
        if mm.shape != (info["capacity"], *spec.shape) or mm.dtype != np.dtype(spec.dtype):
            raise DamagedRecordError(
                patch_id,
                path,
                f"its shard file holds {mm.dtype}{list(mm.shape)}, expected {spec.dtype}{[info['capacity'], *spec.shape]}",
            )
        return mm

    def check_contract(
        self, bands: str | Sequence[str] | None, classes: str | Sequence[str] | None
    ) -> dict[str, tuple[str, ...]]:
        """Output band groups for a requested band selection; a missing band or other classes is an error.

        Bands are selected by name (any subset, any order within the contract's grouping); classes must be
        the store's class set in the store's order, since relabelling silently is how models get mislabelled.
        """
        want = contract.resolve_bands(bands) if bands is not None else self.bands
        missing = [b for b in want if b not in self.bands]
        if missing:
            raise StoreError(
                f"store {self.path} has no band(s) {', '.join(missing)}; it holds {', '.join(self.bands)} "
                "(re-encode with --bands to include them)"
            )
        groups = contract.band_groups(want, native=self.native_groups)
        for g, names in groups.items():
            if g not in self.groups or any(b not in self.groups[g].bands for b in names):
                raise StoreError(f"store {self.path} does not group band(s) {', '.join(names)} as {g!r}")
        if classes is not None:
            if isinstance(classes, str):
                ok, asked = classes == self.class_set, f"class set {classes!r}"
            else:
                ok, asked = tuple(classes) == self.classes, f"{len(tuple(classes))} classes in a given order"
            if not ok:
                raise StoreError(
                    f"store {self.path} is labelled with class set {self.class_set!r} ({len(self.classes)} classes, "
                    f"in its official order), but {asked} was asked for; re-encode with --classes, never relabel silently"
                )
        return groups


class StoreDataset(Dataset):
    """One split of a store as a torch Dataset that is best read a batch at a time (:meth:`get_batch`).

    Batches are dicts ``{"image": {group: tensor[B, C, H, W]}, "label": float32[B, N], "index": int64[B],
    "id": list[str]}``, images in the stored dtype (uint16 for S2, float32 for S1) at native resolution,
    groups and channels as :func:`landzoo.contract.band_groups` orders the requested ``bands``. Within a
    batch the patches come sorted by dataset index (the sampler decides *which* patches form a batch).
    It is also an ordinary map-style dataset: ``ds[i]`` is one patch, and a plain
    ``torch.utils.data.DataLoader(ds, batch_size=8, shuffle=True)`` with the default collate gives the same
    batch layout (reading each batch in one gather through :meth:`__getitems__`).

    ``mode``: ``"mmap"`` (default; memory maps opened lazily in each process, so loader workers are safe),
    ``"ram"`` (the split copied into one tensor per group; with ``pin_memory`` in page-locked memory, and so
    are the batches gathered from it, ready for an asynchronous copy to a GPU) or ``"device"`` (that tensor on
    ``device``, loaded shard by shard, so the host never holds more than one shard of it; batches are gathered
    there without a host synchronisation).
    ``verify``: ``"once"`` (default) checks each record's CRC-32 the first time this process reads it, so a
    damaged store is never scored silently and a run of many epochs pays for the check in its first epoch only;
    ``"always"`` checks every read; ``"off"`` none. A damaged record raises :class:`DamagedRecordError` naming
    the patch. ``threads``: copy threads in this process (default 2, or 1 where only one core is usable; always 1
    inside loader workers). ``release_bytes``: see the module docstring.
    """

    def __init__(
        self,
        store: str | os.PathLike | Store,
        split: str | None = None,
        *,
        bands: str | Sequence[str] | None = None,
        classes: str | Sequence[str] | None = None,
        mode: Mode = "mmap",
        device: str | torch.device | None = None,
        verify: Verify = "once",
        release_bytes: int = 1 << 30,
        threads: int | None = None,
        progress: bool = False,
        pin_memory: bool = False,
    ) -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        if mode not in ("mmap", "ram", "device"):
            raise StoreError(f"mode must be 'mmap', 'ram' or 'device', not {mode!r}")
        self.split = split
        self.mode: Mode = mode
        if verify not in VERIFY_MODES:
            raise StoreError(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")
        self.verify: Verify = verify
        self.release_bytes = int(release_bytes)
        self.groups = self.store.check_contract(bands, classes)
        self.bands = tuple(b for names in self.groups.values() for b in names)
        self.classes = self.store.classes
        self.class_set = self.store.class_set
        rows = self.store.rows(split)
        self.rows = rows
        self.ids: np.ndarray = self.store.ids[rows]
        self._shard = self.store.shard_of[rows]
        self._offset_np = self.store.offset[rows]
        self._checksum = self.store.checksum[rows]
        self._verified = np.zeros(len(rows), dtype=bool)  # positions whose CRC this process has checked
        self.labels = torch.from_numpy(self.store.labels[rows].astype(np.float32))
        # channel selection per output group: None where the stored group is taken whole, in order
        self._channels: dict[str, np.ndarray | None] = {}
        for g, names in self.groups.items():
            stored = self.store.groups[g].bands
            ch = [stored.index(b) for b in names]
            self._channels[g] = None if ch == list(range(len(stored))) else np.asarray(ch)
        self._shapes = {g: (len(names), *self.store.groups[g].shape[1:]) for g, names in self.groups.items()}
        self._dtypes = {g: _torch_dtype(self.store.groups[g].dtype) for g in self.groups}
        self._record_bytes = sum(self.store.groups[g].record_bytes for g in self.groups)  # mapped bytes per patch
        self._pid = os.getpid()
        self._maps: dict[tuple[int, str], np.memmap] = {}
        self.threads = int(threads) if threads is not None else _default_threads()
        self._pool: Any = None
        self._since_release = 0
        self.device = torch.device("cpu")
        self.pin_memory = bool(pin_memory) and mode == "ram" and torch.cuda.is_available()
        self._data: dict[str, torch.Tensor] | None = None
        if mode == "device":
            self.device = torch.device(
                device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
            )
            self.labels = self.labels.to(self.device)
        if mode != "mmap":
            self._preload(progress)
            if self.pin_memory:
                self.labels = self.labels.pin_memory()

    # ---- plumbing ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.rows)

    @property
    def layout(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per band group of a batch: the shape of one patch ``(C, H, W)`` and the dtype."""
        return {g: (shape, self._dtypes[g]) for g, shape in self._shapes.items()}

    @property
    def nbytes(self) -> int:
        """Bytes of the whole split's selected band groups at native resolution (what preloading it costs)."""
        return sum(
            int(np.prod(shape)) * len(self) * torch.empty(0, dtype=dtype).element_size()
            for shape, dtype in self.layout.values()
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_maps"] = {}  # memory maps are per process; reopened lazily after unpickling
        state["_pool"] = None
        return state

    def _check_process(self) -> None:
        if os.getpid() != self._pid:  # forked into a loader worker: never share the parent's maps or threads
            self._maps, self._pid, self._since_release, self._pool = {}, os.getpid(), 0, None
            if torch.utils.data.get_worker_info() is not None:
                self.threads = 1  # loader workers are the parallelism already

    def _map(self, shard: int, group: str, patch_id: str) -> np.memmap:
        self._check_process()
        key = (shard, group)
        mm = self._maps.get(key)
        if mm is None:
            mm = self._maps[key] = self.store.open_shard(shard, group, patch_id)
        return mm

    def unload(self) -> None:
        """Free a preloaded copy (``mode="ram"``/``"device"``) now; the dataset reads memory-mapped from then on.

        For whoever still holds the dataset (Lightning keeps a finished stage's loaders): the memory goes back at
        once, not when the last reference does."""
        self._data = None
        self.mode, self.device, self.pin_memory = "mmap", torch.device("cpu"), False
        self.labels = self.labels.cpu()
        self.close()

    def close(self) -> None:
        """Stop the copy threads and drop the memory maps now (instead of at garbage collection)."""
        if self._pool is not None and os.getpid() == self._pid:
            self._pool.shutdown(wait=True)
        self._pool = None
        self._maps.clear()

    def __enter__(self) -> StoreDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None and os.getpid() == getattr(self, "_pid", None):
            pool.shutdown(wait=False)

    def release(self) -> None:
        """Drop the pages this process has mapped (they stay in the page cache): keeps RSS flat."""
        for mm in self._maps.values():
            raw = getattr(mm, "_mmap", None)
            if raw is not None and hasattr(mmap, "MADV_DONTNEED"):
                raw.madvise(mmap.MADV_DONTNEED)
        self._since_release = 0

    def _preload(self, progress: bool) -> None:
        from tqdm.auto import tqdm

        on_host = self.device.type == "cpu"
        try:
            data = {
                g: torch.empty((len(self), *s), dtype=self._dtypes[g], device=self.device, pin_memory=self.pin_memory)
                for g, s in self._shapes.items()
            }
        except (RuntimeError, MemoryError) as err:  # out of device memory, or pinned memory refused
            where = "page-locked host memory" if self.pin_memory else f"{self.device} memory"
            raise StoreError(
                f"cannot hold the {self.split or 'store'} split ({self.nbytes / 1e9:.2f} GB) in {where}: "
                f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}"
            ) from None
        bar = tqdm(total=len(self), desc=f"preloading {self.split or 'store'}", unit="patch", disable=not progress)
        try:
            for shard, a, b in _runs(self._shard):
                positions = np.arange(a, b)
                offsets = self._offset_np[a:b]
                # on a device: one shard at a time through a host buffer (the host never holds the whole split)
                dst = (
                    data
                    if on_host
                    else {g: torch.empty((b - a, *s), dtype=self._dtypes[g]) for g, s in self._shapes.items()}
                )
                self._copy(
                    self._units(shard, positions, offsets, dst, a if on_host else 0), self._checks(positions, offsets)
                )
                if not on_host:
                    for g, t in dst.items():
                        data[g][a:b].copy_(t)
                bar.update(b - a)
        finally:
            bar.close()
            self._maps.clear()  # the preloaded copy is all we keep
        self._data = data

    # ---- reading ---------------------------------------------------------------------------------------
    def _units(
        self, shard: int, positions: np.ndarray, offsets: np.ndarray, out: dict[str, torch.Tensor], start: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]]:
        """Copy jobs (source map, rows, destination view, channels) for rows of one shard."""
        first_id = str(self.ids[positions[0]])
        stop = start + len(offsets)
        return [
            (self._map(shard, g, first_id), offsets, out[g].numpy()[start:stop], self._channels[g]) for g in self.groups
        ]

    def _copy(
        self,
        units: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
        checks: Sequence[tuple[int, np.ndarray, np.ndarray]] = (),
    ) -> None:
        """Run copy jobs and checksum jobs ``(shard, offsets, positions)``; with ``threads > 1`` spread over a
        thread pool (numpy and zlib release the GIL while copying and checksumming).

        numpy's ``take`` is used rather than ``torch.index_select``: torch's OpenMP threads spin at barriers,
        and on a busy machine (other processes on the cores) one batch then costs milliseconds per gather.
        """
        if self.threads <= 1 or len(units) + len(checks) <= 1:
            for check in checks:
                self._verify(*check)
            for unit in units:
                _take(*unit)
            return
        # split the biggest jobs by rows so that the threads get similar amounts of bytes
        jobs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]] = []
        for src, rows, dst, ch in units:
            k = min(self.threads, len(rows))
            bounds = np.linspace(0, len(rows), k + 1).astype(int)
            jobs += [(src, rows[x:y], dst[x:y], ch) for x, y in itertools.pairwise(bounds) if y > x]
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="landzoo-store")
        futures = [self._pool.submit(self._verify, *c) for c in self._split_checks(checks)]
        futures += [self._pool.submit(_take, *job) for job in jobs]
        for f in futures:
            f.result()

    def _split_checks(self, checks: Sequence[tuple[int, np.ndarray, np.ndarray]]) -> list[tuple[int, Any, Any]]:
        """Checksum jobs cut into one piece per thread, so the CRC runs beside the copies."""
        out = []
        for shard, offsets, positions in checks:
            bounds = np.linspace(0, len(offsets), min(self.threads, len(offsets)) + 1).astype(int)
            out += [(shard, offsets[x:y], positions[x:y]) for x, y in itertools.pairwise(bounds) if y > x]
        return out

    def _checks(self, idx: np.ndarray, offsets: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """Checksum jobs for the dataset positions ``idx`` (sorted) that ``verify`` says to check now."""
        if self.verify == "off":
            return []
        todo = np.ones(len(idx), dtype=bool) if self.verify == "always" else ~self._verified[idx]
        if not todo.any():
            return []
        idx, offsets = idx[todo], offsets[todo]
        return [(shard, offsets[a:b], idx[a:b]) for shard, a, b in _runs(self._shard[idx])]

    def _verify(self, shard: int, offsets: np.ndarray, positions: np.ndarray) -> None:
        maps = [self._map(shard, g, str(self.ids[positions[0]])) for g in self.store.groups]
        for off, pos in zip(offsets.tolist(), positions.tolist(), strict=True):
            crc = record_checksum(m[off] for m in maps)
            if crc == int(self._checksum[pos]):
                self._verified[pos] = True
            else:
                raise DamagedRecordError(
                    str(self.ids[pos]),
                    self.store.shard_path(shard, next(iter(self.store.groups))).parent,
                    f"checksum mismatch in shard {self.store.shard_names[shard]} row {off} "
                    f"(stored {int(self._checksum[pos]):08x}, read {crc:08x}): the record is damaged",
                )

    def _empty(self, n: int) -> dict[str, torch.Tensor]:
        """Batch tensors; inside a loader worker straight in shared memory (as default_collate does), which
        saves the copy the worker would otherwise make to hand the batch to the main process."""
        in_worker = torch.utils.data.get_worker_info() is not None
        out = {}
        for g, shape in self._shapes.items():
            if in_worker:
                proto = torch.empty(0, dtype=self._dtypes[g])
                storage = proto._typed_storage()._new_shared(n * int(np.prod(shape)), device="cpu")
                out[g] = proto.new(storage).resize_(n, *shape)
            else:
                out[g] = torch.empty((n, *shape), dtype=self._dtypes[g], pin_memory=self.pin_memory)
        return out

    def get_batch(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> dict[str, Any]:
        """Read dataset positions ``indices`` as one batch (sorted by index)."""
        self._check_process()
        idx = np.sort(np.asarray(indices, dtype=np.int64).reshape(-1))
        if len(idx) and (idx[0] < 0 or idx[-1] >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} patches")
        if self._data is not None and self.device.type != "cpu":
            # indices through page-locked memory: the copy is queued, not waited for (no host synchronisation)
            t = torch.from_numpy(idx)
            t = (t.pin_memory() if self.device.type == "cuda" else t).to(self.device, non_blocking=True)
            image = {g: _gather(d, t) for g, d in self._data.items()}
            label = self.labels.index_select(0, t)
        elif self._data is not None:
            image = self._empty(len(idx))
            self._copy([(d.numpy(), idx, image[g].numpy(), None) for g, d in self._data.items()])
            label = torch.empty((len(idx), self.labels.shape[1]), dtype=self.labels.dtype, pin_memory=self.pin_memory)
            torch.index_select(self.labels, 0, torch.from_numpy(idx), out=label)  # (numpy fancy-indexing: ms)
        else:
            image = self._empty(len(idx))
            offsets = self._offset_np[idx]
            units = []
            for shard, a, b in _runs(self._shard[idx]):
                units += self._units(shard, idx[a:b], offsets[a:b], image, a)
            self._copy(units, self._checks(idx, offsets))
            label = self.labels.index_select(0, torch.from_numpy(idx))  # (numpy fancy-indexing a tensor: ms)
            self._since_release += len(idx) * self._record_bytes
            # a split that fits in the budget cannot outgrow it: never drop (and re-fault) its pages
            if self._since_release >= self.release_bytes and len(self) * self._record_bytes > self.release_bytes:
                self.release()
        return {"image": image, "label": label, "index": torch.from_numpy(idx), "id": self.ids[idx].tolist()}

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The samples at ``indices``, in the order asked, read as one batch.

        A plain ``DataLoader(dataset, batch_size=..., shuffle=...)`` calls this with a batch's indices and hands
        the list to its ``collate_fn``, so the default collate works as with any map-style dataset while the
        read stays one gather per shard. :meth:`loader` skips the split and re-stack altogether.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"index out of range for a dataset of {len(self)} patches")
        idx = idx % max(len(self), 1)
        batch = self.get_batch(idx)  # sorted by index
        where = np.empty(len(idx), dtype=np.int64)
        where[np.argsort(idx, kind="stable")] = np.arange(len(idx))  # sample j sits at sorted position where[j]
        image, label, ids = batch["image"], batch["label"], batch["id"]
        return [
            {"image": {g: t[p] for g, t in image.items()}, "label": label[p], "index": int(idx[j]), "id": ids[p]}
            for j, p in enumerate(where.tolist())
        ]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One patch (for inspection; use batches for speed): tensors without the batch dimension."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} patches")
        batch = self.get_batch([index % len(self)])
        return {
            "image": {g: t[0] for g, t in batch["image"].items()},
            "label": batch["label"][0],
            "index": int(batch["index"][0]),
            "id": batch["id"][0],
        }

    def loader(
        self,
        batch_size: int = 256,
        *,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        pin_memory: bool = False,
        persistent_workers: bool | None = None,
        prefetch_factor: int | None = None,
    ) -> DataLoader:
        """A DataLoader that yields whole batches read by :meth:`get_batch` (see :class:`StoreBatchSampler`)."""
        if self.mode == "device" and num_workers > 0:
            raise StoreError("a store preloaded onto a device is read in the main process: use num_workers=0")
        sampler = StoreBatchSampler(
            len(self),
            batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            num_replicas=num_replicas,
            rank=rank,
        )
        kwargs: dict[str, Any] = {}
        if num_workers > 0:
            kwargs["persistent_workers"] = True if persistent_workers is None else persistent_workers
            if prefetch_factor is not None:
                kwargs["prefetch_factor"] = prefetch_factor
        return DataLoader(
            _BatchView(self),
            sampler=sampler,
            batch_size=None,
            collate_fn=_identity,
            num_workers=num_workers,
            pin_memory=pin_memory,
            **kwargs,
        )


class _BatchView(Dataset):
    """``view[list_of_indices]`` is a whole batch: lets a DataLoader with ``batch_size=None`` read batches."""

    def __init__(self, dataset: StoreDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, indices: Sequence[int]) -> dict[str, Any]:
        return self.dataset.get_batch(indices)


def _take(src: np.ndarray, rows: np.ndarray, dst: np.ndarray, channels: np.ndarray | None) -> None:
    """``dst[:] = src[rows][:, channels]`` in one pass where possible (``mode="clip"``: unbuffered)."""
    if channels is None:
        np.take(src, rows, axis=0, out=dst, mode="clip")
    else:
        dst[...] = np.take(src, rows, axis=0, mode="clip")[:, channels]


def _gather(data: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``data[index]`` on any device; unsigned 16-bit bands move as their signed twin (bit-identical), since
    not every device has uint16 gather kernels."""
    if data.dtype == torch.uint16:
        return data.view(torch.int16).index_select(0, index).view(torch.uint16)
    return data.index_select(0, index)


def _identity(batch: Any) -> Any:
    return batch


def _default_threads() -> int:
    """Copy threads by default: 2 where the process may use two cores. numpy releases the GIL while it copies, and
    measured here (``benchmarks/bench_io.py --copy-threads``) a second thread is faster on an idle machine and no
    slower when other processes keep the cores busy."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return min(2, cores)


def _torch_dtype(name: str) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=name)).dtype


def _runs(keys: np.ndarray) -> list[tuple[int, int, int]]:
    """``(value, start, stop)`` for each run of equal values in a sorted array."""
    if len(keys) == 0:
        return []
    cut = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate(([0], cut))
    stops = np.concatenate((cut, [len(keys)]))
    return [(int(keys[a]), int(a), int(b)) for a, b in zip(starts, stops, strict=True)]


# --------------------------------------------------------------------------------------------------
# Sampling: batches per rank, disjoint across ranks, the whole split per epoch
# --------------------------------------------------------------------------------------------------


def batch_plan(
    n: int,
    batch_size: int,
    *,
    num_replicas: int = 1,
    rank: int = 0,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> list[np.ndarray]:
    """The batches (dataset indices) of one rank for one epoch.

    Deterministic in ``(seed, epoch)``; every rank gets the same number of batches (DDP needs that). Without
    ``drop_last`` the ranks' indices are disjoint and together are ``range(n)`` exactly: full batches first,
    then the remainder split evenly (if it is smaller than the number of ranks, the last full round is
    split with it so that no rank gets an empty batch). With ``drop_last`` the remainder is left out.
    """
    if batch_size < 1 or num_replicas < 1 or not 0 <= rank < num_replicas:
        raise StoreError(f"bad sampler setup: batch_size={batch_size}, num_replicas={num_replicas}, rank={rank}")
    perm = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    w, b = num_replicas, batch_size
    full = n // (b * w)
    rem = n - full * b * w
    if drop_last or rem == 0:
        return [perm[(i * w + rank) * b : (i * w + rank + 1) * b] for i in range(full)]
    if rem < w:
        if full == 0:
            raise StoreError(f"{n} patches cannot be split over {w} ranks without an empty batch")
        full -= 1
        parts = np.array_split(perm[full * b * w :], 2 * w)
        tail = [parts[rank], parts[rank + w]]
    else:
        tail = [np.array_split(perm[full * b * w :], w)[rank]]
    return [perm[(i * w + rank) * b : (i * w + rank + 1) * b] for i in range(full)] + tail


class StoreBatchSampler(DistributedSampler):
    """Yields this rank's batches (lists of dataset indices) for the current epoch; see :func:`batch_plan`.

    It subclasses ``DistributedSampler`` so that Lightning leaves it in place under DDP (it only injects
    its own sampler where the loader's is not one) and calls :meth:`set_epoch` each epoch. Rank and world
    size default to the initialised process group, else a single process.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        # DistributedSampler.__init__ is not called: it needs a dataset and a process group we may not have.
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if ready else 1)
            rank = rank if rank is not None else (dist.get_rank() if ready else 0)
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        batch_plan(n, batch_size, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=drop_last)  # validate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of the current epoch (or of ``epoch``, e.g. to read the next one ahead)."""
        return batch_plan(
            self.n,
            self.batch_size,
            num_replicas=self.num_replicas,
            rank=self.rank,
            shuffle=self.shuffle,
            seed=self.seed,
            epoch=self.epoch if epoch is None else epoch,
            drop_last=self.drop_last,
        )

    def __iter__(self) -> Iterator[list[int]]:  # type: ignore[override]
        for batch in self.batches():
            yield batch.tolist()

    def __len__(self) -> int:
        w, b = self.num_replicas, self.batch_size
        full, rem = divmod(self.n, b * w)
        if self.drop_last or rem == 0:
            return full
        return full + 1  # one more batch per rank (a short remainder shares the last full round: still one)
