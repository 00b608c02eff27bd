"""`landzoo demo` end to end at a toy size: generate -> encode -> benchmark -> leaderboard and report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from landzoo.cli import main

pytestmark = pytest.mark.slow


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    code = main(
        ["demo", "--out", str(out), "--patches", "120", "--epochs", "1", "--models", "mixer_p12_120", "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "best constant predictor" in printed and "report:" in printed
    board = json.loads((out / "benchmark" / "leaderboard.json").read_text())
    assert [r["model"] for r in board["rows"]] == ["mixer_p12_120"] and board["rows"][0]["status"] == "ok"
    assert board["baseline"]["f1_macro"] > 0 and board["meta"]["protocol"] == "paper"
    assert (out / "benchmark" / "report.html").is_file() and (out / "store" / "manifest.json").is_file()


def test_demo_refuses_unknown_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--models", "resnet18"]) == 2
    assert "unknown demo model(s) resnet18" in capsys.readouterr().err
