"""Encode a raw dataset (through its reader) into a store: parallel, resumable, never half-written.

How a run goes:

1. Open the reader (``on_bad="skip"`` with ``skip_bad``), read the first good patch in this process to learn
   each band group's shape and dtype (this also warms the reader's caches before the workers fork).
2. Plan: records ordered by split (train, val, test, none), cut into shards of ``shard_records``. The plan
   (options, group specs, shard sizes, a hash of the patch ids) goes to ``plan.json``. An existing store
   folder must hold the *same* plan, so a resume can never mix two different encodes.
3. Every shard without a valid completion marker is (re)written: its ``.npy`` files are created under a
   ``.tmp`` name (a fresh inode, so an orphaned worker of a killed run cannot write into it) and their blocks
   allocated at once (``posix_fallocate``: a full disk is an ``OSError`` naming the file here, in the main
   process, instead of a SIGBUS in a worker writing to a sparse mapping), worker
   processes write rows straight into the memory-mapped temp files and return checksums, labels and meta;
   when a shard's last chunk is back the main process fsyncs, renames, fsyncs the folder and writes the
   marker, in that order. A patch skipped with ``skip_bad`` leaves its row zeroed and unreferenced.
4. Index, report and manifest are built from the markers alone and written atomically, manifest last.

So ``kill -9`` at any point loses at most the shards in flight, and running the same command again gives
byte-identical files (nothing time- or order-of-completion-dependent is written); temporary files a killed run
left behind are removed when the next run takes the lock. A worker process that dies (a signal, the OOM
killer) stops the encode with an error instead of leaving it waiting for the lost chunk.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import __version__
from landzoo.datasets import PatchError, Reader, open_dataset
from landzoo.files import TMP_SUFFIX, sealed, with_path
from landzoo.store.format import (
    FORMAT,
    FORMAT_VERSION,
    INDEX_FILE,
    MANIFEST_FILE,
    PLAN_FILE,
    REPORT_FILE,
    SHARD_DIR,
    SPLIT_ORDER,
    GroupSpec,
    StoreError,
    atomic_write_bytes,
    atomic_write_json,
    canonical_json,
    fsync_dir,
    label_bits,
    marker_path,
    read_json,
    record_checksum,
    sha256_hex,
    shard_file,
    shard_name,
)

__all__ = ["EncodeResult", "build_index_table", "encode", "encode_reader"]

#: Meta keys that get columns of their own in the index; the rest go to its ``meta`` JSON column.
META_COLUMNS = ("country", "season", "date")
#: Advisory lock file held while an encode writes the store (empty; removed when the store is complete).
LOCK_FILE = ".encode.lock"
#: Patches per worker task: large enough to amortise IPC, small enough for a smooth progress bar.
CHUNK = 32


@dataclass
class EncodeResult:
    """What an encode did (the store itself holds the durable facts)."""

    store: Path
    total: int  # patches in the store
    encoded: int  # patches written by this run (0 when everything was already complete)
    skipped: int  # patches left out (listed in report.json)
    resumed_shards: int  # shards found complete and kept
    seconds: float  # the whole call: opening the reader, planning, encoding, index
    encode_seconds: float = 0.0  # reading and writing the patches only (the part that scales with patches)

    @property
    def patches_per_s(self) -> float:
        """Encoding throughput: patches written per second of the read+write phase."""
        return self.encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0


# --------------------------------------------------------------------------------------------------
# Worker side (module-level state, set by the pool initialiser or in-process for workers <= 1)
# --------------------------------------------------------------------------------------------------

_W: dict[str, Any] = {}


def _init_worker(
    reader: Reader, specs: dict[str, GroupSpec], store: str, skip_bad: bool, die_with_parent: bool
) -> None:
    if die_with_parent:
        _die_with_parent()
        # a SIGTERM to the process group stops the workers outright; the main process unwinds and cleans up
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _W.clear()
    _W.update(reader=reader, specs=specs, store=Path(store), skip_bad=skip_bad, maps={})


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the encoding process dies, so a ``kill -9`` leaves no orphan writers."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tmp_path(store: Path, shard: str, group: str) -> Path:
    final = shard_file(store, shard, group)
    return final.with_name(final.name + ".tmp")


def _shard_maps(shard: str) -> dict[str, np.memmap]:
    maps: dict[str, dict[str, np.memmap]] = _W["maps"]
    if shard not in maps:
        for old in list(maps):  # one shard open at a time per worker
            del maps[old]
        maps[shard] = {g: np.load(_tmp_path(_W["store"], shard, g), mmap_mode="r+") for g in _W["specs"]}  # type: ignore[misc]
    return maps[shard]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _check_sample(sample: dict[str, Any], reader: Reader, index: int, specs: dict[str, GroupSpec]) -> None:
    record = reader.records[index]
    where = reader.root / record.location
    if sample["id"] != record.id:
        raise PatchError(record.id, where, f"reader returned patch {sample['id']!r} for it")
    image = sample["image"]
    if list(image) != list(specs):
        raise PatchError(record.id, where, f"band groups {list(image)}, the store's are {list(specs)}")
    for g, spec in specs.items():
        arr = image[g]
        if tuple(arr.shape) != spec.shape or arr.dtype != np.dtype(spec.dtype):
            raise PatchError(
                record.id,
                where,
                f"band group {g} ({','.join(spec.bands)}) is {arr.dtype}{list(arr.shape)}, "
                f"the store's is {spec.dtype}{list(spec.shape)} (set by the first patch)",
            )


def _encode_chunk(task: tuple[str, int, list[int]]) -> dict[str, Any]:
    """Read ``indices`` and write them to rows ``row0..`` of shard ``shard``'s temp files."""
    shard, row0, indices = task
    reader: Reader = _W["reader"]
    specs: dict[str, GroupSpec] = _W["specs"]
    maps = _shard_maps(shard)
    records, bad = [], []
    for j, index in enumerate(indices):
        try:
            sample = reader.read(index)
            _check_sample(sample, reader, index, specs)
        except PatchError as err:
            item = {"id": err.patch_id, "path": err.path, "reason": err.reason, "stage": "read"}
            if not _W["skip_bad"]:
                return {"shard": shard, "error": item, "n": len(indices)}
            bad.append(item)
            continue
        row = row0 + j
        for g in specs:
            maps[g][row] = sample["image"][g]
        meta = dict(sample["meta"])
        meta.pop("split", None)
        records.append(
            {
                "row": row,
                "id": sample["id"],
                "checksum": record_checksum(sample["image"][g] for g in specs),
                "labels": list(sample["labels"]),
                "label": label_bits(sample["label"]),
                "meta": _jsonable(meta),
            }
        )
    # No msync here: the pages are in the shared page cache, and the main process fsyncs the file once
    # the shard is complete (msync per chunk cost a synchronous disk write per 32 patches).
    return {"shard": shard, "records": records, "bad": bad, "n": len(indices)}


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


def _probe(reader: Reader, order: Sequence[int], skip_bad: bool) -> dict[str, GroupSpec]:
    """Shapes and dtypes per band group, from the first patch that reads."""
    for index in order:
        try:
            sample = reader.read(index)
        except PatchError:
            if not skip_bad:
                raise
            continue  # a worker will meet it again and record it in the report
        return {
            g: GroupSpec(g, tuple(reader.groups[g]), tuple(int(x) for x in arr.shape), np.dtype(arr.dtype).name)  # type: ignore[arg-type]
            for g, arr in sample["image"].items()
        }
    raise StoreError(f"{reader.name} at {reader.root}: not one patch could be read; nothing to encode")


def _plan(
    reader: Reader,
    specs: dict[str, GroupSpec],
    order: list[int],
    shard_records: int,
    reader_options: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[tuple[str, list[int]]]]:
    """The plan document and, per shard, the reader indices it holds (row order).

    Besides the patch ids it records the source folder and the reader options: options such as a label
    threshold change labels but not ids, and a resume must never mix shards encoded under two of them.
    """
    shards: list[tuple[str, str | None, list[int]]] = []
    for split in SPLIT_ORDER:
        members = [i for i in order if reader.records[i].split == split]
        for k in range(0, len(members), shard_records):
            shards.append((shard_name(split, k // shard_records), split, members[k : k + shard_records]))
    ids = "\n".join(reader.records[i].id for _, _, m in shards for i in m)
    plan = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dataset": reader.name,
        "bands": list(reader.bands),
        "native_groups": bool(reader.native_groups),
        "groups": {g: s.to_json() for g, s in specs.items()},
        "group_order": list(specs),
        "class_set": reader.class_set_name,
        "classes": list(reader.classes),
        "shard_records": shard_records,
        "checksum": "crc32",
        "patches": len(order),
        "patch_ids_sha256": sha256_hex(ids.encode()),
        "source": str(Path(reader.root).resolve()),
        "reader_options": {k: reader_options[k] for k in sorted(reader_options or {})},
        "shards": [{"name": n, "split": s, "capacity": len(m)} for n, s, m in shards],
    }
    return plan, [(n, m) for n, _, m in shards]


def _expected_size(spec: GroupSpec, capacity: int) -> int:
    from landzoo.store.format import npy_header_size

    return npy_header_size((capacity, *spec.shape), spec.dtype) + capacity * spec.record_bytes


def _shard_complete(store: Path, shard: str, capacity: int, specs: dict[str, GroupSpec], plan_hash: str) -> bool:
    path = marker_path(store, shard)
    if not path.is_file():
        return False
    try:
        marker = read_json(path)
    except StoreError:
        return False
    if marker.get("plan_sha256") != plan_hash or marker.get("shard") != shard:
        return False
    for g, spec in specs.items():
        f = shard_file(store, shard, g)
        if not f.is_file() or f.stat().st_size != _expected_size(spec, capacity):
            return False
    return True


def _prepare_folder(out: Path, plan: dict[str, Any]) -> None:
    """Create the store folder, or check that an existing one holds the same plan (a resume)."""
    plan_path = out / PLAN_FILE
    if plan_path.is_file():
        old = read_json(plan_path)
        if old != plan:
            keys = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise StoreError(
                f"{out} holds an encode of other input or options (differs in: {', '.join(keys)}); "
                "delete it or choose another --out"
            )
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StoreError(f"{out} exists and is not a landzoo store being encoded; choose an empty or new folder")
    (out / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_path, plan)


def _create_tmp(store: Path, shard: str, capacity: int, specs: dict[str, GroupSpec]) -> None:
    for g, spec in specs.items():
        tmp = _tmp_path(store, shard, g)
        tmp.unlink(missing_ok=True)  # new inode: a writer left over from a killed run cannot touch it
        shard_file(store, shard, g).unlink(missing_ok=True)
        try:
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=spec.dtype, shape=(capacity, *spec.shape))
            del mm  # zero-filled file; workers open it r+
            _allocate(tmp)
        except OSError as err:
            raise with_path(err, tmp) from None


def _allocate(path: Path) -> None:
    """Reserve the disk blocks of ``path`` now, so that writing through a memory map cannot hit a full disk.

    (A write to a mapped page of a sparse file on a full disk is a SIGBUS that kills the writer; an allocation
    that does not fit is an ``ENOSPC`` OSError here.) File systems without fallocate get glibc's emulation.
    """
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:  # pragma: no cover - not POSIX
        return
    fd = os.open(path, os.O_RDWR)
    try:
        allocate(fd, 0, os.fstat(fd).st_size)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP):  # those: no fallocate and no emulation
            raise
    finally:
        os.close(fd)


def _finish_shard(
    store: Path,
    shard: str,
    split: str | None,
    capacity: int,
    specs: dict[str, GroupSpec],
    plan_hash: str,
    results: list,
) -> None:
    """fsync + rename the shard's files, then write its marker (last)."""
    for g in specs:
        tmp = _tmp_path(store, shard, g)
        fd = os.open(tmp, os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, shard_file(store, shard, g))
    fsync_dir(store / SHARD_DIR)
    records = sorted((r for res in results for r in res["records"]), key=lambda r: r["row"])
    bad = sorted((b for res in results for b in res["bad"]), key=lambda b: b["id"])
    marker = {
        "plan_sha256": plan_hash,
        "shard": shard,
        "split": split,
        "capacity": capacity,
        "files": {
            g: {"name": shard_file(store, shard, g).name, "bytes": _expected_size(s, capacity)}
            for g, s in specs.items()
        },
        "records": records,
        "bad": bad,
    }
    atomic_write_json(marker_path(store, shard), marker)


# --------------------------------------------------------------------------------------------------
# Index, report, manifest (from the markers only)
# --------------------------------------------------------------------------------------------------


def build_index_table(markers: Sequence[dict[str, Any]], num_classes: int) -> Any:
    """The parquet index (pyarrow Table) from the shard markers, in store order."""
    import pyarrow as pa

    cols: dict[str, list[Any]] = {k: [] for k in ("id", "split", "labels", "shard", "offset", "checksum", "meta")}
    for k in META_COLUMNS:
        cols[k] = []
    flat: list[np.ndarray] = []
    for m in markers:
        for r in m["records"]:
            cols["id"].append(r["id"])
            cols["split"].append(m["split"])
            cols["labels"].append(r["labels"])
            cols["shard"].append(m["shard"])
            cols["offset"].append(r["row"])
            cols["checksum"].append(r["checksum"])
            meta = dict(r["meta"])
            for k in META_COLUMNS:
                v = meta.pop(k, None)
                cols[k].append(None if v is None else str(v))
            cols["meta"].append(canonical_json(meta).decode().strip() if meta else None)
            flat.append(np.frombuffer(r["label"].encode(), dtype=np.uint8) - ord("0"))
    label = np.concatenate(flat).astype(np.uint8) if flat else np.zeros(0, dtype=np.uint8)
    return pa.table(
        {
            "id": pa.array(cols["id"], pa.string()),
            "split": pa.array(cols["split"], pa.string()),
            "labels": pa.array(cols["labels"], pa.list_(pa.string())),
            "label": pa.FixedSizeListArray.from_arrays(pa.array(label, pa.uint8()), num_classes),
            "country": pa.array(cols["country"], pa.string()),
            "season": pa.array(cols["season"], pa.string()),
            "date": pa.array(cols["date"], pa.string()),
            "shard": pa.array(cols["shard"], pa.string()),
            "offset": pa.array(cols["offset"], pa.int32()),
            "checksum": pa.array(cols["checksum"], pa.uint32()),
            "meta": pa.array(cols["meta"], pa.string()),
        }
    )


def _write_parquet(path: Path, table: Any) -> str:
    """Write the index; returns its SHA-256 (recorded in the manifest)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    atomic_write_bytes(path, data)
    return sha256_hex(data)


def _finalise(
    out: Path,
    src: Path,
    reader: Reader,
    plan: dict[str, Any],
    plan_hash: str,
    specs: dict[str, GroupSpec],
    index_bad: list[dict[str, Any]],
) -> tuple[int, int]:
    markers = [read_json(marker_path(out, s["name"])) for s in plan["shards"]]
    table = build_index_table(markers, len(reader.classes))
    index_sha256 = _write_parquet(out / INDEX_FILE, table)
    read_bad = [b for m in markers for b in m["bad"]]
    skipped = sorted(index_bad + read_bad, key=lambda b: (b["id"], b["stage"]))
    per_split: dict[str, int] = {}
    for m in markers:
        key = m["split"] or "none"
        per_split[key] = per_split.get(key, 0) + len(m["records"])
    total = sum(per_split.values())
    reader_notes = {
        k: _jsonable(getattr(reader, k))
        for k in ("split_source", "missing_from_disk", "excluded", "unlisted")
        if hasattr(reader, k)
    }
    atomic_write_json(
        out / REPORT_FILE,
        {
            "dataset": reader.name,
            "source": str(src),
            "patches_listed": len(reader.records) + len(index_bad),
            "patches_stored": total,
            "skipped": skipped,
            "reader": reader_notes,
        },
    )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "landzoo_version": __version__,
        "dataset": reader.name,
        "source": str(src),
        "bands": list(reader.bands),
        "native_groups": bool(reader.native_groups),
        "groups": {g: s.to_json() for g, s in specs.items()},
        "group_order": list(specs),
        "class_set": reader.class_set_name,
        "classes": list(reader.classes),
        "counts": {"total": total, "per_split": per_split, "skipped": len(skipped)},
        "checksum": "crc32 of each record's bytes, band groups chained in 'group_order'",
        "index": INDEX_FILE,
        "index_sha256": index_sha256,
        "report": REPORT_FILE,
        "plan_sha256": plan_hash,
        "shard_records": plan["shard_records"],
        "shards": [
            {
                "name": s["name"],
                "split": s["split"],
                "capacity": s["capacity"],
                "stored": len(m["records"]),
                "files": m["files"],
            }
            for s, m in zip(plan["shards"], markers, strict=True)
        ],
    }
    atomic_write_json(out / MANIFEST_FILE, sealed(manifest))
    return total, len(skipped)


# --------------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------------


def encode(
    dataset: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    bands: str | Sequence[str] | None = None,
    classes: str | None = None,
    skip_bad: bool = False,
    reader_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> EncodeResult:
    """Encode raw dataset ``dataset`` at ``src`` into the store folder ``out`` (resuming if it was started).

    Opens the reader (``on_bad="skip"`` with ``skip_bad``) and calls :func:`encode_reader`; ``kwargs``
    (``workers``, ``shard_records``, ``shard_mb``, ``progress``) go there.
    """
    reader = open_dataset(
        dataset, src, bands=bands, classes=classes, on_bad="skip" if skip_bad else "raise", **(reader_kwargs or {})
    )
    options = {
        k: v if isinstance(v, bool | int | float | str) or v is None else str(v)
        for k, v in (reader_kwargs or {}).items()
    }
    return encode_reader(reader, out, skip_bad=skip_bad, reader_options=options, **kwargs)


def encode_reader(
    reader: Reader,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    skip_bad: bool = False,
    shard_records: int | None = None,
    shard_mb: float = 1024,
    progress: bool = True,
    reader_options: dict[str, Any] | None = None,
) -> EncodeResult:
    """Encode every patch of an open reader into the store folder ``out`` (resuming if it was started).

    ``reader_options``: the options the reader was opened with (recorded in the plan; a resume must match).

    ``shard_records`` patches per shard (default: as many as fit in ``shard_mb`` MiB). ``workers`` processes
    read and write in parallel (``<= 1``: in this process). Without ``skip_bad`` the first bad patch stops
    the run with a :class:`PatchError` naming patch and file; complete shards stay valid for a rerun. With
    it, bad patches are left out and listed with their reasons in ``report.json``.
    """
    t0 = time.perf_counter()
    out = Path(out)
    src = reader.root
    index_bad = [
        {"id": b.patch_id, "path": b.path, "reason": b.reason, "stage": "index"} for b in getattr(reader, "bad", [])
    ]
    if index_bad and not skip_bad:
        b = index_bad[0]
        raise PatchError(b["id"], b["path"], b["reason"])
    rank = {s: k for k, s in enumerate(SPLIT_ORDER)}
    unknown = sorted({str(r.split) for r in reader.records if r.split not in rank})
    if unknown:
        raise StoreError(f"{reader.name} reader gave unknown split(s) {', '.join(unknown)}")
    order = sorted(range(len(reader.records)), key=lambda i: rank[reader.records[i].split])
    if not order:
        raise StoreError(f"{reader.name} at {src}: no patches to encode")
    specs = _probe(reader, order, skip_bad)
    record_bytes = sum(s.record_bytes for s in specs.values())
    if shard_records is None:
        shard_records = max(1, int(shard_mb * 2**20) // record_bytes)
    if shard_records < 1:
        raise StoreError(f"shard_records must be >= 1, not {shard_records}")
    plan, shard_members = _plan(reader, specs, order, shard_records, reader_options)
    plan_hash = sha256_hex(canonical_json(plan))
    _prepare_folder(out, plan)
    with _exclusive(out):
        return _encode_planned(
            reader, out, src, plan, plan_hash, shard_members, specs, index_bad, workers, skip_bad, progress, t0
        )


@contextlib.contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One encode per store folder at a time (an advisory lock, released by the kernel if the process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock = out / LOCK_FILE
    with open(lock, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError(f"another landzoo encode is writing {out}; wait for it or stop it first") from None
        # no other encode runs here: every temporary file is a leftover of a killed run
        for folder in (out, out / SHARD_DIR):
            for tmp in folder.glob(f"*{TMP_SUFFIX}"):
                tmp.unlink(missing_ok=True)
        yield
        lock.unlink(missing_ok=True)  # the store is complete: nothing of the encode stays behind


def _encode_planned(
    reader: Reader,
    out: Path,
    src: Path,
    plan: dict[str, Any],
    plan_hash: str,
    shard_members: list[tuple[str, list[int]]],
    specs: dict[str, GroupSpec],
    index_bad: list[dict[str, Any]],
    workers: int,
    skip_bad: bool,
    progress: bool,
    t0: float,
) -> EncodeResult:

    capacity = {s["name"]: s["capacity"] for s in plan["shards"]}
    split_of = {s["name"]: s["split"] for s in plan["shards"]}
    done = {n for n, _ in shard_members if _shard_complete(out, n, capacity[n], specs, plan_hash)}
    todo = [(n, m) for n, m in shard_members if n not in done]
    already = sum(capacity[n] for n in done)

    encoded = 0
    t1 = time.perf_counter()
    if todo:
        try:  # every shard's blocks are allocated before any patch is read: a full disk shows at once
            for n, _ in todo:
                marker_path(out, n).unlink(missing_ok=True)
                _create_tmp(out, n, capacity[n], specs)
        except BaseException:
            _remove_tmp(out, [n for n, _ in todo], specs)
            raise
        encoded = _run(out, reader, specs, todo, capacity, split_of, plan_hash, workers, skip_bad, progress, already)
    t2 = time.perf_counter()
    total, skipped = _finalise(out, src, reader, plan, plan_hash, specs, index_bad)
    return EncodeResult(out, total, encoded, skipped, len(done), time.perf_counter() - t0, t2 - t1)


def _tasks(todo: list[tuple[str, list[int]]]) -> Iterator[tuple[str, int, list[int]]]:
    for name, members in todo:
        for k in range(0, len(members), CHUNK):
            yield name, k, members[k : k + CHUNK]


def _completed(
    pool: ProcessPoolExecutor, tasks: Iterator[tuple[str, int, list[int]]], in_flight: int
) -> Iterator[dict[str, Any]]:
    """Results of the chunks as they complete, at most ``in_flight`` queued; a dead worker is an error, not a hang."""
    pending: set[Future] = set()
    try:
        while True:
            for task in itertools.islice(tasks, in_flight - len(pending)):
                pending.add(pool.submit(_encode_chunk, task))
            if not pending:
                return
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                yield f.result()
    except BrokenProcessPool:
        raise StoreError(
            "an encode worker process died (killed by a signal, e.g. the out-of-memory killer); the finished shards "
            "are kept: run the same command again to resume"
        ) from None


def _run(
    out: Path,
    reader: Reader,
    specs: dict[str, GroupSpec],
    todo: list[tuple[str, list[int]]],
    capacity: dict[str, int],
    split_of: dict[str, str | None],
    plan_hash: str,
    workers: int,
    skip_bad: bool,
    progress: bool,
    already: int,
) -> int:
    from tqdm.auto import tqdm

    remaining = {n: len(m) for n, m in todo}
    results: dict[str, list[dict[str, Any]]] = {n: [] for n, _ in todo}
    total = already + sum(remaining.values())
    bar = tqdm(total=total, initial=already, desc="encoding", unit="patch", disable=not progress, smoothing=0.1)
    pool = None
    ok = False
    try:
        if workers <= 1:
            _init_worker(reader, specs, str(out), skip_bad, False)
            stream: Iterator[dict[str, Any]] = map(_encode_chunk, _tasks(todo))
        else:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            pool = ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_init_worker, initargs=(reader, specs, str(out), skip_bad, True)
            )
            stream = _completed(pool, _tasks(todo), in_flight=4 * workers)
        encoded = 0
        for res in stream:
            if "error" in res:
                e = res["error"]
                raise PatchError(e["id"], e["path"], e["reason"])
            name = res["shard"]
            results[name].append(res)
            remaining[name] -= res["n"]
            encoded += len(res["records"])
            bar.update(res["n"])
            if remaining[name] == 0:
                if workers <= 1:
                    _W["maps"].pop(name, None)  # unmap before the rename
                _finish_shard(out, name, split_of[name], capacity[name], specs, plan_hash, results.pop(name))
        ok = True
        return encoded
    finally:
        bar.close()
        if pool is not None:  # on an error: drop the queued chunks, let the running ones (milliseconds) end
            pool.shutdown(wait=True, cancel_futures=True)
        _W.clear()
        if not ok:  # leave no temp file behind; they would never be taken as complete anyway
            _remove_tmp(out, list(results), specs)


def _remove_tmp(out: Path, shards: list[str], specs: dict[str, GroupSpec]) -> None:
    for name in shards:
        for g in specs:
            with contextlib.suppress(OSError):
                _tmp_path(out, name, g).unlink()
