"""Summarise a raw dataset through its reader: patches per split, label frequencies, bad patches."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from landzoo.datasets.base import Reader


def summarise(reader: Reader, *, progress: bool = True, limit: int | None = None) -> dict[str, Any]:
    """Read every patch (or the first ``limit``) and count splits, labels and bad patches.

    Reading the pixels is the point: it is what finds truncated or wrong-sized files. In skip mode the
    bad patches are listed with their reasons; in raise mode the first one stops the summary.

    The bad patches found while the reader listed the folder (bad names, listed patches absent on disk) are
    always reported: they are never in the index, so ``limit`` cannot leave them out.
    """
    indexed = {r.id for r in reader.records}
    if limit is not None:
        reader.records = reader.records[:limit]
    outside = indexed - {r.id for r in reader.records}
    per_split: Counter[str] = Counter()
    label_counts = {"all": np.zeros(len(reader.classes), dtype=np.int64)}
    earlier = list(reader.bad)
    for sample in reader.iter_samples(progress=progress):
        split = sample["meta"].get("split") or "none"
        per_split[split] += 1
        label_counts.setdefault(split, np.zeros(len(reader.classes), dtype=np.int64))
        label_counts[split] += sample["label"]
        label_counts["all"] += sample["label"]
    found = reader.bad[len(earlier) :]
    # ``earlier`` holds the index's bad patches, plus, if this reader was read before, the pixel-reading ones
    # of that pass: this pass finds those again (or, past ``limit``, was told not to look), so they are
    # dropped rather than counted twice.
    again = set(found)
    bad = [b for b in earlier if b not in again and b.patch_id not in outside] + found
    return {
        "dataset": reader.name,
        "root": str(reader.root),
        "bands": list(reader.bands),
        "class_set": reader.class_set_name,
        "split_source": reader.split_source or None,
        "patches": int(sum(per_split.values())),
        "patches_per_split": dict(sorted(per_split.items())),
        "label_frequency": {
            split: {c: int(n) for c, n in zip(reader.classes, counts, strict=True)}
            for split, counts in label_counts.items()
        },
        "missing": reader.missing,
        "missing_from_disk": dict(reader.missing_from_disk),
        "excluded": dict(reader.excluded),
        "unlisted": len(reader.unlisted),
        "bad_patches": [{"id": b.patch_id, "path": b.path, "reason": b.reason} for b in bad],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable text of :func:`summarise`'s result."""
    lines = [
        f"{summary['dataset']} at {summary['root']}",
        f"bands: {','.join(summary['bands'])}   classes: {summary['class_set']}"
        + (f"   splits from: {summary['split_source']}" if summary.get("split_source") else ""),
        f"patches read: {summary['patches']}",
    ]
    for split, n in summary["patches_per_split"].items():
        lines.append(f"  {split:<6} {n:>9,}")
    if summary["missing_from_disk"]:
        lines.append(missing_line(summary["missing_from_disk"]))
    if summary["excluded"]:
        lines.append("excluded: " + ", ".join(f"{k} {v:,}" for k, v in summary["excluded"].items()))
    if summary.get("unlisted"):
        lines.append(f"in no split (on disk, named by no split list): {summary['unlisted']:,}")
    freq = summary["label_frequency"]["all"]
    total = max(summary["patches"], 1)
    width = max((len(c) for c in freq), default=10)
    lines.append("label frequency (patches, share):")
    for c, n in sorted(freq.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {c:<{width}} {n:>9,}  {100 * n / total:5.1f}%")
    bad = summary["bad_patches"]
    lines.append(f"bad patches: {len(bad)}")
    for b in bad[:50]:
        lines.append(f"  {b['id']}: {b['reason']}" + (f" ({b['path']})" if b["path"] else ""))
    if len(bad) > 50:
        lines.append(f"  ... and {len(bad) - 50} more (use --json for the full list)")
    return "\n".join(lines)


def missing_line(missing_from_disk: dict[str, int], where: str = "not read") -> str:
    """The one line every command prints about listed patches absent on disk (``missing="report"``)."""
    total = sum(missing_from_disk.values())
    per_split = ", ".join(f"{k} {v:,}" for k, v in missing_from_disk.items())
    return (
        f"listed but absent on disk: {total:,} patch(es) ({per_split}), {where}; "
        "--missing error makes each one a bad patch"
    )
