"""The console and the loggers of a training run: one validation line per epoch (also without the progress bar) and
the logger chosen by config (the device banner once per process: tests/training/test_benchmark_faults.py)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest
from _train_helpers import MODEL, overrides

from _faults import one_line_error
from landzoo.cli import main

pytestmark = pytest.mark.slow

FAST = {"data.batch_size": 16, "cost.measure": "false"}


def test_one_validation_line_per_epoch_without_the_bar(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fit", "--no-progress", *overrides(store, tmp_path, **FAST)]) == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if ": val loss " in line]
    assert [line.split(": val")[0] for line in lines] == [f"{MODEL} epoch 1/2", f"{MODEL} epoch 2/2"]
    assert all("f1_micro 0." in line and "f1_macro 0." in line for line in lines)
    assert "it/s" not in captured.err + captured.out  # no progress bar
    # the CSV log (the default logger) holds the same validation metrics per epoch
    with open(next((tmp_path / MODEL / "logs").rglob("metrics.csv")), newline="") as fh:
        rows = list(csv.DictReader(fh))
    logged = [float(r["val/f1_micro"]) for r in rows if r.get("val/f1_micro")]
    printed = [float(line.split("f1_micro ")[1].split(",")[0]) for line in lines]
    assert logged == pytest.approx(printed, abs=5e-5)


def test_the_logger_is_chosen_by_config(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--no-progress", *overrides(store, tmp_path, **FAST, **{"trainer.logger": "none"})]) == 0
    assert not (tmp_path / MODEL / "logs").exists()
    if importlib.util.find_spec("tensorboard") is None and importlib.util.find_spec("tensorboardX") is None:
        out = tmp_path / "tb"
        err = one_line_error(capsys, main(["fit", *overrides(store, out, **FAST, **{"trainer.logger": "tensorboard"})]))
        assert "pip install 'landzoo[tensorboard]'" in err
