"""The benchmark's leaderboard as tables, plots and a self-contained HTML report.

Rows come from run results (:func:`landzoo.training.run.fit`); :mod:`.benchmark` runs the models and calls
these to write ``leaderboard.{csv,json,md}``, ``plots/*.png`` and ``report.html``.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LEADERBOARD_COLUMNS",
    "format_leaderboard",
    "leaderboard_rows",
    "make_plots",
    "write_html",
    "write_leaderboard",
]

#: Leaderboard columns, in order (metrics on the test split, cost as defined in :mod:`.cost`).
LEADERBOARD_COLUMNS: tuple[str, ...] = (
    "rank",
    "model",
    "status",
    "arch",
    "model_kwargs",
    "family",
    "params",
    "macs",
    "input_size",
    "f1_macro",
    "f1_micro",
    "map_macro",
    "map_micro",
    "auroc_macro",
    "precision_micro",
    "recall_micro",
    "f2_micro",
    "paper_accuracy_micro",
    "hamming_loss",
    "subset_accuracy",
    "best_epoch",
    "val_select",
    "train_time_s",
    "epoch_time_s",
    "train_img_s",
    "infer_img_s_model",
    "infer_img_s_e2e",
    "peak_mem_mb",
    "precision",
    "global_batch",
    "lr",
    "epochs",
    "error",
)


def _get(d: dict[str, Any] | None, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def leaderboard_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per run result (see :func:`landzoo.training.run.fit`), best test macro-F1 first, failures last."""
    rows = []
    for r in results:
        test = r.get("test") or {}
        cost = r.get("cost") or {}
        mem = cost.get("peak_mem_bytes")
        row = {
            "model": r.get("model"),
            "status": r.get("status", "failed"),
            "arch": r.get("arch"),
            "model_kwargs": json.dumps(r["model_kwargs"], sort_keys=True) if r.get("model_kwargs") else None,
            "family": r.get("family"),
            "params": cost.get("params"),
            "macs": cost.get("macs"),
            "input_size": cost.get("input_size"),
            **{k: test.get(k) for k in LEADERBOARD_COLUMNS if k in test},
            "best_epoch": r.get("best_epoch"),
            "val_select": r.get("val_select"),
            "train_time_s": cost.get("train_time_s"),
            "epoch_time_s": cost.get("epoch_time_s"),
            "train_img_s": cost.get("train_img_s"),
            "infer_img_s_model": cost.get("infer_img_s_model"),
            "infer_img_s_e2e": cost.get("infer_img_s_e2e"),
            "peak_mem_mb": None if mem is None else round(mem / 2**20, 1),
            "precision": cost.get("precision"),
            "global_batch": _get(r, "scaling", "global_batch"),
            "lr": _get(r, "scaling", "lr_effective"),
            "epochs": _get(r, "config", "trainer", "epochs"),
            "error": r.get("error"),
        }
        rows.append({k: row.get(k) for k in LEADERBOARD_COLUMNS if k != "rank"})
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: -(r.get("f1_macro") or -1.0))
    bad = [r for r in rows if r["status"] != "ok"]
    out = []
    for i, r in enumerate(ok, 1):
        out.append({"rank": i, **r})
    for r in bad:
        out.append({"rank": None, **r})
    return out


def _fmt(v: Any, key: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if key.startswith(
            ("f1", "f2", "map", "auroc", "precision_", "recall_", "paper_", "hamming", "subset")
        ) or key in ("val_select",):
            return f"{v:.4f}"
        if key == "lr":
            return f"{v:.3g}"
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and key in ("params", "macs"):
        return f"{v:,}"
    return str(v)


_MD_COLUMNS = (
    "rank",
    "model",
    "params",
    "macs",
    "input_size",
    "f1_macro",
    "f1_micro",
    "map_macro",
    "train_time_s",
    "train_img_s",
    "infer_img_s_model",
    "infer_img_s_e2e",
    "peak_mem_mb",
    "status",
)


def _markdown(rows: list[dict[str, Any]], baseline: dict[str, Any] | None, meta: dict[str, Any]) -> str:
    lines = [
        f"# landzoo benchmark: protocol `{meta.get('protocol')}`",
        "",
        f"- data: `{meta.get('store')}` (test split: {meta.get('test_patches', '?')} patches)",
        f"- hardware: {meta.get('hardware')}",
        f"- epochs: {meta.get('epochs')}, global batch: {meta.get('global_batch')}, precision: {meta.get('precision')}",
        "",
        "| " + " | ".join(_MD_COLUMNS) + " |",
        "|" + "|".join("---" for _ in _MD_COLUMNS) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c), c) for c in _MD_COLUMNS) + " |")
    if baseline:
        cells = {c: "" for c in _MD_COLUMNS}
        cells.update(
            model="*best constant predictor*",
            f1_macro=_fmt(baseline.get("f1_macro"), "f1_macro"),
            f1_micro=_fmt(baseline.get("f1_micro"), "f1_micro"),
            status="baseline",
        )
        lines.append("| " + " | ".join(cells[c] for c in _MD_COLUMNS) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- `{r['model']}`: {r.get('error')}" for r in failed]
    lines.append("")
    return "\n".join(lines)


def write_leaderboard(
    rows: list[dict[str, Any]], baseline: dict[str, Any] | None, meta: dict[str, Any], out: Path
) -> dict[str, Path]:
    """Write ``leaderboard.csv``, ``.json`` and ``.md``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "leaderboard.csv", "json": out / "leaderboard.json", "md": out / "leaderboard.md"}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=LEADERBOARD_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in LEADERBOARD_COLUMNS})
        if baseline:
            w.writerow(
                {
                    "model": "best_constant_predictor",
                    "status": "baseline",
                    "f1_macro": baseline.get("f1_macro"),
                    "f1_micro": baseline.get("f1_micro"),
                }
            )
    payload = {"meta": meta, "baseline": baseline, "rows": rows}
    paths["json"].write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(_markdown(rows, baseline, meta), encoding="utf-8")
    return paths


# ---- plots ------------------------------------------------------------------------------------------
def _short(name: str, n: int = 22) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def make_plots(
    rows: list[dict[str, Any]],
    per_class: dict[str, dict[str, dict[str, float]]],
    classes: Sequence[str],
    baseline: dict[str, Any] | None,
    out: Path,
) -> dict[str, Path]:
    """F1 vs parameters / inference rate / training time, and the per-class F1 heat map, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    ok = [r for r in rows if r["status"] == "ok"]
    paths: dict[str, Path] = {}
    for key, xkey, xlabel in (
        ("f1_vs_params", "params", "trainable parameters"),
        ("f1_vs_inference", "infer_img_s_e2e", "inference rate, end to end (img/s)"),
        ("f1_vs_train_time", "train_time_s", "training time excluding validation (s)"),
    ):
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
        pts = [r for r in ok if r.get(xkey) and r.get("f1_macro") is not None]
        for metric, marker in (("f1_macro", "o"), ("f1_micro", "s")):
            xs = [r[xkey] for r in pts if r.get(metric) is not None]
            ys = [r[metric] for r in pts if r.get(metric) is not None]
            ax.scatter(xs, ys, marker=marker, label=metric.replace("_", "-"))
        for r in pts:
            ax.annotate(r["model"], (r[xkey], r["f1_macro"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if baseline and baseline.get("f1_macro") is not None:
            ax.axhline(baseline["f1_macro"], color="grey", ls="--", lw=1, label="best constant (macro)")
        if baseline and baseline.get("f1_micro") is not None:
            ax.axhline(baseline["f1_micro"], color="grey", ls=":", lw=1, label="best constant (micro)")
        if pts and min(r[xkey] for r in pts) > 0:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test F1")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        fig.tight_layout()
        paths[key] = out / f"{key}.png"
        fig.savefig(paths[key])
        plt.close(fig)

    models = [r["model"] for r in ok if r["model"] in per_class]
    if models and classes:
        import numpy as np

        grid = np.array([[per_class[m].get(c, {}).get("f1", np.nan) for c in classes] for m in models], dtype=float)
        fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(classes) + 2), 0.45 * len(models) + 2.6), dpi=110)
        im = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(classes)), [_short(c) for c in classes], rotation=70, ha="right", fontsize=7)
        ax.set_yticks(range(len(models)), models, fontsize=8)
        for i in range(len(models)):
            for j in range(len(classes)):
                v = grid[i, j]
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="w" if v < 0.6 else "k")
        fig.colorbar(im, ax=ax, label="test F1")
        ax.set_title("per-class F1 (test)")
        fig.tight_layout()
        paths["per_class_f1"] = out / "per_class_f1.png"
        fig.savefig(paths["per_class_f1"])
        plt.close(fig)
    return paths


def write_html(
    rows: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    meta: dict[str, Any],
    plots: dict[str, Path],
    out: Path,
) -> Path:
    """One self-contained HTML report: meta, leaderboard table, baseline, failures, plots inlined as base64."""
    cols = [c for c in LEADERBOARD_COLUMNS if c != "error"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cls = "" if r["status"] == "ok" else ' class="failed"'
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(_fmt(r.get(c), c))}</td>" for c in cols) + "</tr>")
    if baseline:
        cells = {c: "" for c in cols}
        cells.update(
            model="best constant predictor",
            status="baseline",
            f1_macro=_fmt(baseline.get("f1_macro"), "f1_macro"),
            f1_micro=_fmt(baseline.get("f1_micro"), "f1_micro"),
        )
        body.append('<tr class="baseline">' + "".join(f"<td>{html.escape(cells[c])}</td>" for c in cols) + "</tr>")
    failed = "".join(
        f"<li><code>{html.escape(str(r['model']))}</code>: {html.escape(str(r.get('error')))}</li>"
        for r in rows
        if r["status"] != "ok"
    )
    images = []
    for key, path in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        images.append(
            f'<figure><img alt="{key}" src="data:image/png;base64,{data}"><figcaption>{key}</figcaption></figure>'
        )
    meta_rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in meta.items()
        if not isinstance(v, dict)
    )
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>landzoo benchmark ({html.escape(str(meta.get("protocol")))})</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;font-size:12px}} td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}}
th{{background:#f3f3f3}} tr.failed td{{color:#a00}} tr.baseline td{{font-style:italic;background:#fafafa}}
figure{{display:inline-block;margin:8px}} img{{max-width:680px}}
</style></head><body>
<h1>landzoo benchmark: protocol <code>{html.escape(str(meta.get("protocol")))}</code></h1>
<table>{meta_rows}</table>
<h2>Leaderboard (test split)</h2>
<table><tr>{head}</tr>{"".join(body)}</table>
{"<h2>Failed runs</h2><ul>" + failed + "</ul>" if failed else ""}
<h2>Plots</h2>
{"".join(images)}
</body></html>
"""
    path = out / "report.html"
    path.write_text(doc, encoding="utf-8")
    return path


def format_leaderboard(rows: list[dict[str, Any]], baseline: dict[str, Any] | None) -> str:
    """A plain-text table for the terminal, with the best-constant baseline as the last line."""
    cols = ("rank", "model", "params", "f1_macro", "f1_micro", "map_macro", "train_time_s", "infer_img_s_e2e", "status")
    table = [[_fmt(r.get(c), c) for c in cols] for r in rows]
    if baseline:
        table.append(
            ["", "best constant predictor", "", _fmt(baseline.get("f1_macro"), "f1_macro"),
             _fmt(baseline.get("f1_micro"), "f1_micro"), "", "", "", "baseline"]
        )  # fmt: skip
    widths = [max(len(c), *(len(row[i]) for row in table)) if table else len(c) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in table]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"  {r['model']} failed: {r.get('error')}")
    return "\n".join(lines)
