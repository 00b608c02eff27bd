"""``landzoo bench-train``: one tiny row per data path through the CLI, and its refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _train_helpers import MODEL

from landzoo.cli import main

pytestmark = pytest.mark.slow


def test_bench_train_measures_each_row(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "train.json"
    args = [
        "bench-train",
        "--store",
        str(store),
        "--models",
        MODEL,
        "--rows",
        "loader-fp32,resident-fp32",
        "--batch-size",
        "8",
        "--warmup",
        "2",
        "--steps",
        "3",
        "--device",
        "cpu",
        "--workers",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    report = json.loads(out.read_text())
    assert report["benchmark"] == "bench-train" and "torch" in report["versions"] and report["device"].startswith("CPU")
    assert report["settings"]["timed_steps"] == 3 and report["settings"]["epoch_patches"] == 269_695
    loader, resident = report["rows"]
    assert (loader["row"], resident["row"]) == ("loader-fp32", "resident-fp32")
    assert loader["switches"]["data"] == "loader" and resident["switches"]["data"].startswith("resident:")
    for row in (loader, resident):
        assert row["train_img_s"] > 0 and row["val_img_s"] > 0 and row["precision"] == "32-true"
        assert row["epoch_s_v1_train"] == pytest.approx(269_695 / row["train_img_s"])
        assert 0 <= row["data_wait_share"] < 1 and row["peak_mem_kind"] == "cpu_rss"
    table = capsys.readouterr().out
    assert f"{MODEL:<18} loader-fp32" in table and f"{MODEL:<18} resident-fp32" in table


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rows", "resident-fp16"], "row 'resident-fp16' is not DATA-PRECISION[-compile]"),
        (["--rows", "loader-fp32-fast"], "the optional third part is 'compile'"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--models", "resnet5O"], "resnet5O"),
        ([], "is not a landzoo store"),
    ],
)
def test_bad_options_are_one_line(
    extra: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["bench-train", "--store", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("landzoo bench-train: error: ") and message in err[0]
