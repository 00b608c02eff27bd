"""Describe a store: what it holds (bands, classes, counts per split, label frequencies) and its size on disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from landzoo.store.format import REPORT_FILE, read_json
from landzoo.store.reader import Store

__all__ = ["format_info", "store_info"]


def store_info(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON-ready summary of the store at ``path`` (reads the manifest and index, not the shards)."""
    store = Store(path)
    m = store.manifest
    splits = store.split_names
    freq: dict[str, dict[str, int]] = {}
    per_split = {}
    for s in splits:
        rows = store.rows(s)
        per_split[s] = len(rows)
        counts = store.labels[rows].sum(axis=0, dtype=np.int64)
        for c, n in zip(store.classes, counts.tolist(), strict=True):
            freq.setdefault(c, {})[s] = n
    total = store.labels.sum(axis=0, dtype=np.int64).tolist()
    for c, n in zip(store.classes, total, strict=True):
        freq[c]["all"] = n
    report_path = Path(path) / REPORT_FILE
    skipped = len(read_json(report_path).get("skipped", [])) if report_path.is_file() else None
    size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())
    return {
        "store": str(store.path),
        "format_version": m["format_version"],
        "landzoo_version": m.get("landzoo_version"),
        "dataset": store.dataset,
        "source": m.get("source"),
        "bands": list(store.bands),
        "groups": {
            g: {"bands": list(s.bands), "shape": list(s.shape), "dtype": s.dtype} for g, s in store.groups.items()
        },
        "class_set": store.class_set,
        "classes": list(store.classes),
        "patches": len(store),
        "per_split": per_split,
        "skipped": skipped,
        "label_frequencies": freq,
        "shards": len(store.shard_names),
        "size_on_disk_bytes": size,
    }


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def format_info(info: dict[str, Any]) -> str:
    """The summary as a readable text block (``landzoo info`` without ``--json``)."""
    lines = [
        f"store      {info['store']}",
        f"dataset    {info['dataset']} (from {info['source']}), store format {info['format_version']}, "
        f"landzoo {info['landzoo_version']}",
        f"patches    {info['patches']:,} in {info['shards']} shard(s); "
        + ", ".join(f"{s} {n:,}" for s, n in info["per_split"].items())
        + (f"; {info['skipped']} skipped (see report.json)" if info.get("skipped") else ""),
        f"size       {_human(info['size_on_disk_bytes'])} on disk",
        "bands      "
        + "; ".join(
            f"{g}: {','.join(d['bands'])} {d['dtype']} {d['shape'][1]}x{d['shape'][2]}"
            for g, d in info["groups"].items()
        ),
        f"classes    {info['class_set']} ({len(info['classes'])})",
        "",
    ]
    splits = list(info["per_split"])
    width = max(len(c) for c in info["classes"])
    width = min(width, 60)
    header = f"{'class':<{width}}  " + "  ".join(f"{s:>8}" for s in [*splits, "all"])
    lines.append(header)
    lines.append("-" * len(header))
    for c in info["classes"]:
        f = info["label_frequencies"][c]
        name = c if len(c) <= width else c[: width - 1] + "…"
        lines.append(f"{name:<{width}}  " + "  ".join(f"{f.get(s, 0):>8,}" for s in [*splits, "all"]))
    return "\n".join(lines)
