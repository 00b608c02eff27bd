"""The benchmark's leaderboard as tables, plots and a self-contained HTML report.

Rows come from run results (:func:`landzoo.training.run.fit`); :mod:`.benchmark` runs the models and calls
these to write ``leaderboard.{csv,json,md}``, ``plots/*.png`` and ``report.html``.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landzoo.files import atomic_write_text

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
    "peak_mem_kind",
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
            "peak_mem_kind": cost.get("peak_mem_kind"),
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

        grid = np.array(
            [[np.nan if (f := _f1(per_class[m].get(c))) is None else f for c in classes] for m in models], dtype=float
        )
        # classes as rows: 19 class names read horizontally, one column per model; legible at 100 % in the report
        fig, ax = plt.subplots(figsize=(3.6 + 0.9 * len(models), 0.34 * len(classes) + 1.6), dpi=100)
        cmap = matplotlib.colormaps["Blues"].with_extremes(bad="#e6e6e6")
        im = ax.imshow(np.ma.masked_invalid(grid.T), vmin=0.0, vmax=1.0, cmap=cmap, aspect="auto")
        ax.set_yticks(range(len(classes)), [_short(c, 34) for c in classes], fontsize=9)
        ax.set_xticks(range(len(models)), models, rotation=30, ha="right", fontsize=9)
        for i in range(len(models)):
            for j in range(len(classes)):
                v = grid[i, j]
                text = "n/a" if np.isnan(v) else f"{v:.2f}"
                ax.text(
                    i,
                    j,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="#666" if np.isnan(v) else ("w" if v > 0.6 else "k"),
                )
        fig.colorbar(im, ax=ax, label="test F1", fraction=0.05)
        ax.set_title("per-class F1 (test; n/a: no test example)", fontsize=10)
        fig.tight_layout()
        paths["per_class_f1"] = out / "per_class_f1.png"
        fig.savefig(paths["per_class_f1"])
        plt.close(fig)
    return paths


#: The columns of the report's main table: what decides between models, labelled in words.
KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rank", "rank"),
    ("model", "model"),
    ("params", "params"),
    ("macs", "MACs"),
    ("input_size", "input px"),
    ("f1_macro", "macro-F1"),
    ("f1_micro", "micro-F1"),
    ("map_macro", "mAP (macro)"),
    ("train_time_s", "train time (s)"),
    ("infer_img_s_e2e", "inference (img/s)"),
)


def _f1(row: dict[str, Any] | None) -> float | None:
    """A class's F1, or None where the split has no example of it (F1 is undefined there, not 0)."""
    if not row or not row.get("support"):
        return None
    return row.get("f1")


def _peak_mem_note(rows: list[dict[str, Any]]) -> str:
    kinds = {r.get("peak_mem_kind") for r in rows if r.get("peak_mem_mb") is not None}
    if "cpu_rss" in kinds:
        return (
            "peak_mem_mb on CPU is the process's peak resident memory since it started (ru_maxrss): in a benchmark "
            "of several models it is a running maximum over the models trained so far, not a per-model figure. "
        )
    if kinds:
        return "peak_mem_mb is the device's peak allocated memory during the model's run (reset per model). "
    return ""


def write_html(
    rows: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    meta: dict[str, Any],
    plots: dict[str, Path],
    out: Path,
    *,
    per_class: dict[str, dict[str, dict[str, float]]] | None = None,
    classes: Sequence[str] = (),
    config: dict[str, Any] | None = None,
) -> Path:
    """One self-contained HTML report that fits a laptop screen.

    The key columns first (the full table one click away), a sentence saying what was run and how to read it,
    the per-class F1 as a table (classes without test examples shown as n/a), plots with captions in words, the
    settings and the configuration.
    """
    from landzoo import htmlpage as hp

    ok = [r for r in rows if r["status"] == "ok"]
    protocol = meta.get("protocol")
    lead = (
        f"{len(ok)} model(s) trained and tested under the {protocol!s} protocol on {meta.get('store')} "
        f"({meta.get('test_patches', '?')} test patches), on {meta.get('hardware')}. They are ranked by test macro-F1 "
        "(the mean over classes of each class's F1), at the epoch selected on the validation split."
    )
    if baseline and baseline.get("f1_macro") is not None:
        lead += (
            f" The best constant predictor (the same answer for every patch) scores {baseline['f1_macro']:.3f} "
            "macro-F1: a model below it has learnt nothing."
        )
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lead += f" {len(failed)} run(s) failed; their errors are listed below."

    def cells(r: dict[str, Any], cols: Sequence[str]) -> list[str]:
        return [_fmt(r.get(c), c) for c in cols]

    key_cols = [c for c, _ in KEY_COLUMNS]
    body = [cells(r, key_cols) for r in rows]
    classes_of_rows = ["" if r["status"] == "ok" else "failed" for r in rows]
    if baseline:
        body.append(
            ["", "best constant predictor", "", "", "", _fmt(baseline.get("f1_macro"), "f1_macro"),
             _fmt(baseline.get("f1_micro"), "f1_micro"), "", "", ""]
        )  # fmt: skip
        classes_of_rows.append("baseline")
    main_table = hp.table([label for _, label in KEY_COLUMNS], body, text_columns=2, row_classes=classes_of_rows)
    full_cols = [c for c in LEADERBOARD_COLUMNS if c != "error"]
    full = hp.table(full_cols, [cells(r, full_cols) for r in rows], text_columns=3)
    sections: list[tuple[str | None, str]] = [
        ("Leaderboard (test split)", main_table + hp.details("Full table: every metric and cost", full)),
    ]
    if failed:
        items = "".join(f"<li><code>{hp.esc(r['model'])}</code>: {hp.esc(r.get('error'))}</li>" for r in failed)
        sections.append(("Failed runs", f"<ul>{items}</ul>"))
    models = [r["model"] for r in ok if per_class and r["model"] in per_class]
    if models and classes:
        first = per_class[models[0]]  # every model is tested on the same split: one support column
        table_rows = []
        for c in classes:
            support = (first.get(c) or {}).get("support")
            table_rows.append(
                [f'<td class="text">{hp.esc(c)}</td>', f"<td>{'' if support is None else int(support)}</td>"]
                + [hp.heat_cell(_f1(per_class[m].get(c))) for m in models]
            )
        sections.append(
            (
                "Per-class F1 (test split)",
                "<p>Each cell is a model's F1 on one class; darker is better. "
                f"{hp.NA} marks a class without any example in the test split, where F1 is undefined.</p>"
                + hp.table(["class", "test examples", *models], table_rows, text_columns=1, raw=True),
            )
        )
    captions = {
        "f1_vs_params": "Test F1 (macro: circles, micro: squares) against the number of trainable parameters, "
        "log scale: models towards the top left do more with fewer parameters. Dashed lines: the best constant "
        "predictor.",
        "f1_vs_inference": "Test F1 against the end-to-end inference rate (store to probabilities, images per "
        "second, log scale): towards the top right is better.",
        "f1_vs_train_time": "Test F1 against the training time without validation (seconds, log scale): towards "
        "the top left is better.",
        "per_class_f1": "Per-class test F1 of every model as a heat map (n/a: no test example of the class).",
    }
    figs = "".join(hp.figure(path, captions.get(key, key)) for key, path in plots.items())
    if figs:
        sections.append(("Plots", figs))
    settings = {k: v for k, v in meta.items() if not isinstance(v, dict)}
    notes = _peak_mem_note(rows) + (
        "Training time excludes validation; the inference rate is measured end to end on the test split "
        "(reading, transfer, model), and model-only on batches already on the device (infer_img_s_model)."
    )
    settings_html = hp.key_values(settings) + f"<p>{hp.esc(notes)}</p>"
    if meta.get("software"):
        settings_html += hp.key_values({"software": meta["software"]})
    if config:
        settings_html += hp.details(
            "Configuration of the runs (the first model's; the others differ in the model)", hp.key_values(config)
        )
    sections.append(("Settings", settings_html))
    doc = hp.page(f"landzoo benchmark: protocol {protocol}", sections, lead=lead)
    path = out / "report.html"
    atomic_write_text(path, doc)
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
