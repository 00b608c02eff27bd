"""Re-check a store end to end: manifest, index, markers, shard files, and every record's checksum.

Damage is reported per patch id (a truncated or missing shard file damages every patch in it), store-level
inconsistencies as problems. Nothing is repaired: re-encoding into a new folder is the remedy.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landzoo.store.format import (
    PLAN_FILE,
    DamagedRecordError,
    StoreError,
    label_bits,
    marker_path,
    read_json,
    record_checksum,
    sha256_hex,
)
from landzoo.store.reader import Store

__all__ = ["VerifyResult", "verify_store"]


@dataclass
class VerifyResult:
    store: Path
    checked: int = 0
    damaged: list[dict[str, Any]] = field(default_factory=list)  # {"id", "shard", "offset", "reason"}
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "ok": self.ok,
            "checked": self.checked,
            "damaged": self.damaged,
            "problems": self.problems,
        }


def verify_store(path: str | os.PathLike, *, progress: bool = True) -> VerifyResult:
    """Verify the store at ``path``; never raises for damage (see :attr:`VerifyResult.ok`)."""
    from tqdm.auto import tqdm

    result = VerifyResult(Path(path))
    try:
        store = Store(path)
    except StoreError as err:
        result.problems.append(str(err))
        return result
    _check_index(store, result)
    _check_plan(store, result)
    bar = tqdm(total=len(store), desc="verifying", unit="patch", disable=not progress)
    try:
        for k, name in enumerate(store.shard_names):
            rows = np.flatnonzero(store.shard_of == k)
            _check_marker(store, k, rows, result)
            maps: list[np.memmap] = []
            try:
                for g in store.groups:
                    first = str(store.ids[rows[0]]) if len(rows) else name
                    maps.append(store.open_shard(k, g, first))
            except DamagedRecordError as err:
                for r in rows:
                    result.damaged.append(_damage(store, r, f"{err.reason} ({err.path})"))
                bar.update(len(rows))
                continue
            capacity = maps[0].shape[0]
            for r in rows[np.argsort(store.offset[rows], kind="stable")]:
                off = int(store.offset[r])
                if not 0 <= off < capacity:
                    result.damaged.append(_damage(store, r, f"offset {off} is outside shard {name} ({capacity} rows)"))
                    continue
                crc = record_checksum(m[off] for m in maps)
                result.checked += 1
                if crc != int(store.checksum[r]):
                    result.damaged.append(
                        _damage(store, r, f"checksum mismatch (index {int(store.checksum[r]):08x}, data {crc:08x})")
                    )
                bar.update(1)
            del maps
    finally:
        bar.close()
    result.damaged.sort(key=lambda d: (d["shard"], d["offset"]))
    return result


def _damage(store: Store, row: int, reason: str) -> dict[str, Any]:
    return {
        "id": str(store.ids[row]),
        "shard": store.shard_names[int(store.shard_of[row])],
        "offset": int(store.offset[row]),
        "reason": reason,
    }


def _check_index(store: Store, result: VerifyResult) -> None:
    counts = store.manifest.get("counts", {})
    if counts.get("total") != len(store):
        result.problems.append(f"index has {len(store)} rows, the manifest says {counts.get('total')}")
    dup = [i for i, c in Counter(store.ids.tolist()).items() if c > 1]
    if dup:
        result.problems.append(f"index lists patch id(s) more than once: {', '.join(sorted(dup)[:10])}")
    slots = Counter(zip(store.shard_of.tolist(), store.offset.tolist(), strict=True))
    clash = [
        store.ids[r]
        for r, key in enumerate(zip(store.shard_of.tolist(), store.offset.tolist(), strict=True))
        if slots[key] > 1
    ]
    if clash:
        result.problems.append(f"index points several patches at one record: {', '.join(sorted(map(str, clash))[:10])}")
    for k, info in enumerate(store.shards):
        rows = np.flatnonzero(store.shard_of == k)
        wrong = [str(store.ids[r]) for r in rows if (store.split[r] or None) != info["split"]]
        if wrong:
            result.problems.append(
                f"patch(es) {', '.join(wrong[:10])} are in shard {info['name']} of split {info['split']} but indexed under another split"
            )
        if len(rows) != info.get("stored"):
            result.problems.append(
                f"shard {info['name']}: index has {len(rows)} patches, the manifest says {info.get('stored')}"
            )


def _check_plan(store: Store, result: VerifyResult) -> None:
    """``plan.json`` (what a resumed encode compares against) must be the plan the manifest was built from."""
    path = store.path / PLAN_FILE
    try:
        digest = sha256_hex(path.read_bytes())
    except OSError as err:
        result.problems.append(f"{path} is unreadable ({err.strerror or err})")
        return
    if digest != store.manifest.get("plan_sha256"):
        result.problems.append(f"{path} is not the plan this store was encoded with (edited or damaged)")


def _check_marker(store: Store, k: int, rows: np.ndarray, result: VerifyResult) -> None:
    """The shard's completion marker must exist and agree with the index (ids, offsets, checksums, labels).

    Record checksums cover the pixels only; the labels are checked against the marker's copy, written with
    the shard, so a damaged label in the index is found too.
    """
    name = store.shard_names[k]
    try:
        marker = read_json(marker_path(store.path, name))
    except StoreError as err:
        result.problems.append(f"shard {name}: completion marker {err}")
        return
    by_id = {r["id"]: r for r in marker.get("records", [])}
    for r in rows:
        rec = by_id.get(str(store.ids[r]))
        if rec is None or rec["row"] != int(store.offset[r]) or rec["checksum"] != int(store.checksum[r]):
            result.damaged.append(_damage(store, r, f"index entry disagrees with shard {name}'s completion marker"))
        elif "label" in rec and rec["label"] != label_bits(store.labels[r]):
            result.damaged.append(_damage(store, r, f"label in the index differs from shard {name}'s marker"))
    if len(by_id) != len(rows):
        result.problems.append(f"shard {name}: marker lists {len(by_id)} patches, the index {len(rows)}")
