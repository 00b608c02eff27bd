"""Leaderboard, plots and HTML report from run results; benchmark orchestration (failures, reuse, rerun)."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest

from landzoo.contract import BEN19
from landzoo.training import benchmark as bm

PNG = b"\x89PNG\r\n\x1a\n"


def _result(model: str, f1_macro: float, params: int, status: str = "ok") -> dict[str, Any]:
    if status != "ok":
        return {"model": model, "status": status, "error": "RuntimeError: out of memory"}
    return {
        "model": model,
        "status": "ok",
        "family": "cnn",
        "classes": list(BEN19),
        "test": {"f1_macro": f1_macro, "f1_micro": f1_macro + 0.1, "map_macro": 0.5},
        # the last class has no test example: its F1 is undefined (the metrics give 0), the report says n/a
        "test_per_class": {c: {"f1": (i % 10) / 10, "support": float(i < 18) * (i + 1)} for i, c in enumerate(BEN19)},
        "best_epoch": 2,
        "val_select": 0.7,
        "scaling": {"global_batch": 64, "lr_effective": 1e-3},
        "config": {"trainer": {"epochs": 3}},
        "cost": {
            "params": params,
            "macs": params * 100,
            "input_size": 60,
            "train_time_s": 12.5,
            "epoch_time_s": 4.2,
            "train_img_s": 100.0,
            "infer_img_s_model": 900.0,
            "infer_img_s_e2e": 500.0,
            "peak_mem_bytes": 2**30,
            "peak_mem_kind": "cpu_rss",
            "precision": "32-true",
        },
        "baseline": {"f1_macro": 0.2, "f1_micro": 0.3},
        "env": {"hardware": "CPU: test"},
    }


def test_rows_sorted_by_macro_f1_with_failures_last() -> None:
    rows = bm.leaderboard_rows([_result("a", 0.5, 10), _result("x", 0, 0, "failed"), _result("b", 0.7, 20)])
    assert [r["model"] for r in rows] == ["b", "a", "x"]
    assert [r["rank"] for r in rows] == [1, 2, None]
    assert rows[2]["error"] == "RuntimeError: out of memory" and rows[2]["status"] == "failed"
    assert rows[0]["peak_mem_mb"] == 1024.0 and rows[0]["global_batch"] == 64 and rows[0]["epochs"] == 3
    assert tuple(rows[0]) == bm.LEADERBOARD_COLUMNS


def test_outputs_csv_json_md_plots_html(tmp_path: Path) -> None:
    results = [_result("a", 0.5, 10), _result("x", 0, 0, "failed"), _result("b", 0.7, 2000)]
    rows = bm.leaderboard_rows(results)
    baseline = {"f1_macro": 0.2, "f1_micro": 0.3}
    meta = {"protocol": "paper", "hardware": "CPU: test", "store": "s"}
    paths = bm.write_leaderboard(rows, baseline, meta, tmp_path)
    with open(paths["csv"], newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [r["model"] for r in table] == ["b", "a", "x", "best_constant_predictor"]
    assert (
        float(table[0]["f1_macro"]) == 0.7 and table[3]["status"] == "baseline" and float(table[3]["f1_macro"]) == 0.2
    )
    data = json.loads(paths["json"].read_text())
    assert data["baseline"] == baseline and data["rows"][0]["model"] == "b" and data["meta"]["protocol"] == "paper"
    md = paths["md"].read_text()
    assert "best constant predictor" in md and "0.7000" in md and "out of memory" in md

    per_class = {r["model"]: r["test_per_class"] for r in results if r["status"] == "ok"}
    plots = bm.make_plots(rows, per_class, BEN19, baseline, tmp_path / "plots")
    assert set(plots) == {"f1_vs_params", "f1_vs_inference", "f1_vs_train_time", "per_class_f1"}
    for p in plots.values():
        assert p.read_bytes().startswith(PNG)
    html = bm.write_html(rows, baseline, meta, plots, tmp_path).read_text()
    # self-contained: no external resources, every plot embedded byte for byte
    assert not re.search(r'(src|href)="(?!data:)', html)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in plots.values())
    assert "best constant predictor" in html and "out of memory" in html


def test_benchmark_reports_failures_reuses_finished_and_reruns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from landzoo.training import run as run_mod

    calls: list[str] = []

    def fake_fit(cfg, **kw):
        calls.append(cfg.model.name)
        if cfg.model.name == "bad":
            raise RuntimeError("CUDA out of memory.\nTried to allocate ...")
        res = {**_result(cfg.model.name, 0.6, 100), "config": cfg.to_dict()}  # as the real fit stores it
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "results.json").write_text(json.dumps(res))
        return res

    monkeypatch.setattr(run_mod, "fit", fake_fit)
    monkeypatch.setattr(run_mod, "check_model_names", lambda names: None)
    monkeypatch.setattr(run_mod, "check_store", lambda store, splits=(): Path(store))
    out = tmp_path / "bench"
    res = bm.run_benchmark(["m1", "bad", "m2"], tmp_path, epochs=1, out=out, progress=False)
    assert calls == ["m1", "bad", "m2"]
    by = {r["model"]: r for r in res["rows"]}
    assert by["bad"]["status"] == "failed" and by["bad"]["error"] == "RuntimeError: CUDA out of memory."
    assert by["m1"]["status"] == by["m2"]["status"] == "ok"
    assert res["baseline"] == {"f1_macro": 0.2, "f1_micro": 0.3}
    for name in ("leaderboard.csv", "leaderboard.json", "leaderboard.md", "report.html"):
        assert (out / name).is_file()
    # again: finished models are reused, the failed one is retried
    calls.clear()
    bm.run_benchmark(["m1", "bad", "m2"], tmp_path, epochs=1, out=out, progress=False)
    assert calls == ["bad"]
    calls.clear()
    bm.run_benchmark(["m1", "m2"], tmp_path, epochs=1, out=out, rerun=True, progress=False)
    assert calls == ["m1", "m2"]
    # a finished run trained under other settings (here: epochs) is trained again, not mixed in
    calls.clear()
    bm.run_benchmark(["m1", "m2"], tmp_path, epochs=2, out=out, progress=False)
    assert calls == ["m1", "m2"]


def test_benchmark_bad_input(tmp_path: Path) -> None:
    with pytest.raises(bm.BenchmarkError, match="no models"):
        bm.run_benchmark([" "], tmp_path)
    with pytest.raises(bm.BenchmarkError, match="listed twice"):
        bm.run_benchmark(["a", "a"], tmp_path)


def test_html_report_key_columns_full_table_per_class_and_captions(tmp_path: Path) -> None:
    results = [_result("a", 0.5, 10), _result("b", 0.7, 2000)]
    rows = bm.leaderboard_rows(results)
    per_class = {r["model"]: r["test_per_class"] for r in results}
    plots = bm.make_plots(rows, per_class, BEN19, None, tmp_path / "plots")
    meta = {"protocol": "paper", "hardware": "CPU: test", "store": "s", "test_patches": 99}
    config = {"optim": {"name": "adam", "lr": 1e-4}, "trainer": {"epochs": 3}}
    page = bm.write_html(
        rows, None, meta, plots, tmp_path, per_class=per_class, classes=BEN19, config=config
    ).read_text()
    tables = re.findall(r"<table>(.*?)</table>", page, re.S)
    main_header = re.findall(r"<th[^>]*>([^<]*)</th>", tables[0])
    assert main_header == ["rank", "model", "params", "MACs", "input px", "macro-F1", "micro-F1", "mAP (macro)",
                           "train time (s)", "inference (img/s)"]  # fmt: skip
    assert "<summary>Full table: every metric and cost</summary>" in page
    full_header = re.findall(r"<th[^>]*>([^<]*)</th>", tables[1])
    assert full_header == [c for c in bm.LEADERBOARD_COLUMNS if c != "error"]
    # per-class table: a row per class, the class without test examples shown as n/a in every model column
    last = re.search(rf"<tr><td class=\"text\">{re.escape(BEN19[-1])}</td>(.*?)</tr>", page).group(1)
    assert last.count(">n/a<") == 2 and "0.80" not in last
    first = re.search(rf"<tr><td class=\"text\">{re.escape(BEN19[1])}</td><td>2</td>(.*?)</tr>", page).group(1)
    assert re.findall(r">([0-9.]+)</td>", first) == ["0.10", "0.10"]
    for caption in ("number of trainable parameters", "end-to-end inference rate", "training time", "heat map"):
        assert caption in page
    assert "optim.lr" in page and "ru_maxrss" in page and "99 test patches" in page
