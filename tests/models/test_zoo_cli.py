"""``landzoo models`` and ``landzoo scale``."""

from __future__ import annotations

import csv
import io
import json

import pytest
import torch

from landzoo.cli import main
from landzoo.models import build_backbone, count_macs, count_params


def test_models_csv_matches_the_built_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--filter", "wrn10_2*", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["name"] for r in rows][:2] == ["wrn10_2", "wrn10_2_ghost"]
    assert len(rows) == 10
    for r in rows[:3]:
        model, size = build_backbone(r["name"])
        assert int(r["params"]) == count_params(model)
        assert int(r["input_size"]) == size == 60
        assert float(r["mmacs"]) == round(count_macs(model, (1, 10, size, size)) / 1e6, 1)
        assert r["family"] == "wrn"


def test_models_json_and_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--family", "mixer", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["params"] for r in rows} == {"mixer_p12_120": 446_723, "mixer_tiny_p12_120": 136_955}
    assert all(r["reference_params"] in (None, r["params"]) for r in rows)
    assert main(["models", "--family", "mixer", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| name | family |") and lines[1].startswith("|---|---|")
    assert "| mixer_p12_120 | mixer | 120 | 446,723 |" in lines[2]


def test_models_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--filter", "wrn10_2", "--bench", "--batch", "2", "--iters", "1", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["fwd_img_s"] > 0


def test_models_unknown_filter_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--filter", "nothing*"]) == 2
    assert "no model matches" in capsys.readouterr().err


def test_scale_grid(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    png = tmp_path / "grid.png"
    args = ["scale", "grid", "--step", "0.2", "--tolerance", "0.25", "--format", "json", "--plot", str(png)]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(abs(r["alpha"] * r["beta"] ** 2 * r["gamma"] ** 2 - 2) <= 0.25 + 1e-9 for r in rows)
    assert all(r["params"] > 0 and r["mmacs"] > 0 for r in rows)
    assert png.stat().st_size > 1000


def test_scale_variants(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scale", "variants", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == [f"wrn_eca_b{i}" for i in range(8)]
    assert rows[0]["params"] == 305_889 and rows[0]["resolution"] == 60
    with torch.device("meta"):
        b7, _ = build_backbone("wrn_eca_b7")
    assert rows[7]["params"] == count_params(b7)
