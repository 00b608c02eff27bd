"""A tiny in-memory raw dataset for the store tests: deterministic arrays per patch, optional bad patches.

Pixels of patch ``i`` come from ``default_rng([seed, i])`` so a test can recompute them independently;
``px`` scales the native sizes down (10 m = ``px``, 20 m = ``px // 2``, 60 m = ``px // 6``) to keep tests fast.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landzoo import contract
from landzoo.datasets.base import PatchError, PatchRecord, Reader, Sample

SPLIT_CYCLE = ("train", "train", "val", "test", "train", None)
COUNTRIES = ("Austria", "Finland", "Portugal")


class FakeReader(Reader):
    name = "fake"
    available_bands = contract.S2_L2A_BANDS
    class_sets = ("ben19", "ben43")

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        n: int = 40,
        px: int = 12,
        seed: int = 0,
        bad_read: Sequence[int] = (),
        bad_index: Sequence[int] = (),
        delay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        self.n, self.px, self.seed, self.delay = n, px, seed, delay
        self.bad_read, self.bad_index = set(bad_read), set(bad_index)
        super().__init__(root, **kwargs)

    def group_shape(self, group: str) -> tuple[int, int]:
        side = {"10m": self.px, "20m": self.px // 2, "60m": max(1, self.px // 6)}[group]
        return side, side

    def _index(self) -> list[PatchRecord]:
        records = []
        for i in range(self.n):
            pid = f"P{i:04d}"
            if i in self.bad_index:
                self._bad(PatchError(pid, self.root / pid, "patch folder is missing"))
                continue
            records.append(PatchRecord(pid, SPLIT_CYCLE[i % len(SPLIT_CYCLE)], pid, {"index": i}))
        return records

    def arrays(self, i: int) -> dict[str, np.ndarray]:
        """The pixels of patch number ``i``, by group (what _read returns)."""
        rng = np.random.default_rng([self.seed, i])
        return {
            g: rng.integers(0, 10000, size=(len(names), *self.group_shape(g)), dtype=np.uint16)
            for g, names in self.groups.items()
        }

    def label_names(self, i: int) -> list[str]:
        rng = np.random.default_rng([self.seed, i, 7])
        names = contract.BEN19 if self.class_set_name == "ben19" else contract.BEN43
        return [names[k] for k in sorted(rng.choice(len(names), size=1 + i % 3, replace=False))]

    def _read(self, record: PatchRecord) -> Sample:
        i = record.meta["index"]
        if self.delay:
            time.sleep(self.delay)
        if i in self.bad_read:
            raise PatchError(record.id, self.root / record.id / f"{record.id}_B02.tif", "unreadable GeoTIFF (fake)")
        sample = self._sample(record, self.arrays(i), self.label_names(i))
        sample["meta"].update(
            {"country": COUNTRIES[i % 3], "season": "Summer", "date": f"2017-06-{1 + i % 28:02d}T10:00:00", "n": i}
        )
        return sample


def make_reader(root: Path, **kwargs: Any) -> FakeReader:
    root.mkdir(parents=True, exist_ok=True)
    return FakeReader(root, **kwargs)
