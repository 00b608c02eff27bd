"""bench-map on a tiny scene: the report has the rows the benchmark promises, measured through the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

from landzoo.mapping.bench import format_table, run_bench


@pytest.mark.slow
def test_bench_map_rows(tmp_path: Path, checkpoint: Path) -> None:
    report = run_bench(
        tmp_path, size_km=2.4, checkpoint=checkpoint, inputs=("safe",), strides=(1200,), read_configs=((2, 1),),
        workers=1, log=lambda _: None, progress=False,
    )  # fmt: skip
    (read,) = report["read"]
    assert (read["input"], read["windows"], read["decoded_mb"]) == (
        "safe",
        4,
        pytest.approx((4 * 240**2 + 6 * 120**2) * 2 / 2**20, abs=0.05),
    )
    (row,) = report["map"]
    assert (row["input"], row["stride_m"], row["windows"], row["scored"]) == ("safe", 1200, 4, 4)
    assert row["command_wall_s"] > row["map_s"] > 0 and row["peak_rss_mb"] > 100
    assert set(row["timings_s"]) >= {"read", "infer", "write", "verify", "cpu_total"}
    assert "AMD" in report["hardware"] or "Intel" in report["hardware"] or "CPU" in report["hardware"]
    table = format_table(report)
    assert "| safe | 1200 | 4 |" in table and "| safe | 2 | 1 |" in table
    # a second run reuses the generated scene
    assert (tmp_path / "scene-2.4km" / "done.json").is_file()
