"""``landzoo scale search``: grid candidates trained by the real engine, ranked on validation, reused on rerun."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from landzoo import scaling
from landzoo.cli import main

pytestmark = pytest.mark.slow

FAST = ["data.batch_size=32", "data.num_workers=0", "trainer.accelerator=cpu", "cost.measure=false"]


def test_search_trains_ranks_and_reuses(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "search"
    argv = ["scale", "search", "--data", str(store), "--limit", "2", "--epochs", "1", "--out", str(out),
            "--no-progress", *FAST]  # fmt: skip
    assert main(argv) == 0
    with open(out / "search.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    # the two candidates with the fewest MACs of the default grid, in the table with what was trained
    grid = sorted(scaling.grid_table(scaling.grid_candidates(), progress=False), key=lambda r: r["macs"])[:2]
    assert {(g["alpha"], g["beta"], g["gamma"]) for g in grid} == {
        (float(r["alpha"]), float(r["beta"]), float(r["gamma"])) for r in rows
    }
    for r in rows:
        result = json.loads((out / "runs" / r["run"] / "results.json").read_text())
        assert float(r["score"]) == pytest.approx(result["val_select"], abs=1e-4)
        assert int(r["params"]) == result["cost"]["params"]  # the trained model is the measured candidate
        assert int(r["resolution"]) == result["contract"]["input_size"]
    assert (out / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "search.md").read_text().startswith("| score |")
    # a second call trains nothing: the finished runs are reused
    stamps = {r["run"]: (out / "runs" / r["run"] / "results.json").stat().st_mtime_ns for r in rows}
    capsys.readouterr()
    assert main(argv) == 0
    assert {k: (out / "runs" / k / "results.json").stat().st_mtime_ns for k in stamps} == stamps


def test_search_bad_input_is_one_line(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["scale", "search", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)],
        ["scale", "search", "--data", str(store), "--out", str(tmp_path), "--tolerance", "0", "--step", "0.7"],
        ["scale", "search", "--data", str(store), "--out", str(tmp_path), "notanoverride"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("landzoo scale: error:"), err
