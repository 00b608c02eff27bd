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


def test_demo_with_a_transfer_step(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    from landzoo.cli import demo

    monkeypatch.setattr(demo, "TRANSFER_PATCHES", 160)
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--patches", "120", "--epochs", "1", "--models", "wrn_eca_b0", "--transfer",
            "--no-progress"]  # fmt: skip
    code = main(argv)
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "| zoo | 0.05 |" in printed and "| random | 1 |" in printed
    summary = json.loads((out / "transfer" / "transfer.json").read_text())
    assert summary["source"]["path"].endswith("wrn_eca_b0") or "wrn_eca_b0" in json.dumps(summary["source"])
    assert {r["init"] for r in summary["runs"]} == {"zoo", "random"} and len(summary["runs"]) == 6
    assert (out / "transfer" / "report.md").is_file()
    assert main(["demo", "--out", str(tmp_path / "x"), "--models", "mixer_p12_120", "--transfer"]) == 2
    assert "keep it in --models" in capsys.readouterr().err
