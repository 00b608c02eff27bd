"""The transfer sweep's table, plot and report: ``transfer_table.{csv,md}``, ``transfer_runs.csv``,
``transfer.json``, ``score_vs_fraction.png`` and ``report.md`` (written by :func:`write_outputs`)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landzoo.files import atomic_write, atomic_write_text
from landzoo.transfer.config import INITS
from landzoo.transfer.config import jsonable as _jsonable
from landzoo.transfer.protocols import TransferProtocol

__all__ = ["aggregate", "make_plot", "table_markdown", "write_outputs"]


# --------------------------------------------------------------------------------------------------
# table, plot, report
# --------------------------------------------------------------------------------------------------
def aggregate(results: Sequence[dict[str, Any]], proto: TransferProtocol) -> list[dict[str, Any]]:
    """Mean and sample std over seeds per (initialisation, fraction)."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["init"], float(r["fraction"])), []).append(r)
    order = {i: k for k, i in enumerate(INITS)}
    rows = []
    for (init, frac), runs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        row: dict[str, Any] = {"init": init, "fraction": frac, "n_train": runs[0]["n_train"], "seeds": len(runs)}
        for m in proto.report_metrics:
            vals = np.array([r["test"].get(m, math.nan) for r in runs], dtype=np.float64)
            row[f"{m}_mean"] = float(np.mean(vals))
            row[f"{m}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        for c in ("train_time_s", "infer_img_s_model", "infer_img_s_e2e", "epochs"):
            vals = [r["cost"].get(c) for r in runs if r["cost"].get(c) is not None]
            row[c] = float(np.mean(vals)) if vals else None
        rows.append(row)
    return rows


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}g}" if abs(v) >= 1000 or v == 0 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def _sig(v: Any) -> str:
    """Seconds to 3 significant digits (0.101, 21.4, 135)."""
    return "" if v is None or not math.isfinite(v) else f"{v:#.3g}".rstrip(".")


def _rate(v: Any) -> str:
    """Images per second as a whole number with thousands separators."""
    return "" if v is None or not math.isfinite(v) else f"{v:,.0f}"


def table_markdown(summary: dict[str, Any]) -> str:
    """The aggregated table as Markdown: score mean +- std per initialisation and fraction, plus cost."""
    proto = summary["protocol"]
    metrics = [m for m in summary["table"][0] if m.endswith("_mean")] if summary["table"] else []
    head = ["init", "fraction", "train patches", "seeds", *(m.removesuffix("_mean") for m in metrics)]
    head += ["train time (s)", "infer img/s (model)", "infer img/s (e2e)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary["table"]:
        cells = [r["init"], f"{r['fraction']:g}", str(r["n_train"]), str(r["seeds"])]
        for m in metrics:
            base = m.removesuffix("_mean")
            mean, std = r[m], r[f"{base}_std"]
            cell = f"{100 * mean:.1f} ± {100 * std:.1f}" if r["seeds"] > 1 else f"{100 * mean:.1f}"
            cells.append(f"**{cell}**" if base == proto["score"] else cell)
        cells += [_sig(r["train_time_s"]), _rate(r["infer_img_s_model"]), _rate(r["infer_img_s_e2e"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def make_plot(summary: dict[str, Any], path: Path) -> Path:
    """Score vs label fraction (log x), one line per initialisation, error bars = std over seeds."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    score = summary["protocol"]["score"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for init in INITS:
        rows = [r for r in summary["table"] if r["init"] == init]
        if not rows:
            continue
        x = [r["fraction"] for r in rows]
        y = [100 * r[f"{score}_mean"] for r in rows]
        e = [100 * r[f"{score}_std"] for r in rows]
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=init)
    ax.set_xscale("log")
    fractions = sorted({r["fraction"] for r in summary["table"]})
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("label fraction of the training split")
    ax.set_ylabel(f"test {score} (%)")
    src = summary["source"]
    ax.set_title(f"{src['arch']} -> {summary['protocol']['dataset']} ({summary['config']['mode']})", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
    return path


def _report(summary: dict[str, Any], plot: Path) -> str:
    cfg, proto, src, tgt = summary["config"], summary["protocol"], summary["source"], summary["target"]
    lines = [
        f"# Transfer: {src['arch']} -> {proto['dataset']} ({cfg['mode']})",
        "",
        f"* checkpoint: `{src['path']}` ({src['arch']}, bands {','.join(src['bands'])}, {src['class_set']}, "
        f"{src['input_size']} px, sha256 {src['sha256'][:12]}...)",
        f"* protocol: {proto['description']}; loss {proto['loss']}; score `{proto['score']}` (test, at the epoch "
        "selected on validation)",
        f"* data: `{tgt['store']}`; splits: {tgt['split_source']}; patches {tgt['patches']}",
        f"* bands (target order): {','.join(summary['bands'])}; normalisation: {tgt['stats_source']}",
        f"* resolution: {summary['resolution']['describe']}",
        f"* label fractions {', '.join(f'{f:g}' for f in cfg['fractions'])} "
        f"({'nested' if cfg['nested'] else 'independent'} stratified subsets), seeds {', '.join(map(str, cfg['seeds']))}",
        f"* initialisations: {', '.join(cfg['inits'])}; ImageNet: {summary['imagenet']}",
        f"* training: {cfg['mode']}, {cfg['epochs']} epochs (at least {cfg['min_steps']} steps), lr {cfg['lr']}, "
        f"batch {cfg['batch_size']}, augment {cfg['augment']}",
        f"* hardware: {summary['env']['hardware']}; torch {summary['env']['torch']}",
        "",
        "## Results (test; mean ± std over seeds, in %)",
        "",
        table_markdown(summary),
        "",
        f"![score vs fraction]({plot.name})",
        "",
        "## First-layer adaptation",
    ]
    if not summary["adaptation"]:
        lines += ["", "No pretrained initialisation was run."]
    for init, rep in summary["adaptation"].items():
        if not rep:
            continue
        lines += ["", f"### {init}", "", f"Layer `{rep['layer']}`, rule `{rep['rule']}`, alpha {rep['alpha']:.4g}.", ""]
        lines += ["| band | rule | source | scale |", "|---|---|---|---|"]
        for b in rep["bands"]:
            scale = "" if b["rule"] == "dropped" else f"{b['scale']:.4g}"
            note = f" ({b['note']})" if b.get("note") else ""
            lines.append(f"| {b['band']} | {b['rule']}{note} | {b['source'] or ''} | {scale} |")
    return "\n".join(lines) + "\n"


def _html(summary: dict[str, Any], plot: Path) -> str:
    """The report as one self-contained HTML page: what was run in words, the table, the plot, the details."""
    from landzoo import htmlpage as hp

    cfg, proto, src, tgt = summary["config"], summary["protocol"], summary["source"], summary["target"]
    score = proto["score"]
    lead = (
        f"The {src['arch']} encoder of {src['path']} was transferred to {proto['dataset']} by {cfg['mode']} "
        f"({proto['description']}), with {', '.join(f'{100 * f:g} %' for f in cfg['fractions'])} of the training "
        f"labels and {len(cfg['seeds'])} seed(s) per setting, from each initialisation ({', '.join(cfg['inits'])}). "
        f"The score is the test {score} at the epoch selected on validation; higher is better. "
        f"Hardware: {summary['env']['hardware']}."
    )
    metrics = [m for m in summary["table"][0] if m.endswith("_mean")] if summary["table"] else []
    header = ["initialisation", "label fraction", "train patches", "seeds"]
    header += [f"{m.removesuffix('_mean')} (%)" for m in metrics]
    header += ["train time (s)", "inference (img/s, model)", "inference (img/s, end to end)"]
    rows = []
    for r in summary["table"]:
        cells = [r["init"], f"{r['fraction']:g}", str(r["n_train"]), str(r["seeds"])]
        for m in metrics:
            base = m.removesuffix("_mean")
            mean, std = r[m], r[f"{base}_std"]
            cells.append(f"{100 * mean:.1f} ± {100 * std:.1f}" if r["seeds"] > 1 else f"{100 * mean:.1f}")
        cells += [_sig(r["train_time_s"]), _rate(r["infer_img_s_model"]), _rate(r["infer_img_s_e2e"])]
        rows.append(cells)
    results = hp.table(header, rows, text_columns=1) + (
        f"<p>Mean ± standard deviation over seeds, in percent; <b>{hp.esc(score)}</b> is the score.</p>"
    )
    caption = (
        f"Test {score} against the fraction of training labels used (log scale), one line per initialisation; "
        "error bars: standard deviation over seeds. A pretrained encoder that helps stays above the random "
        "initialisation, most at the smallest fractions."
    )
    sections: list[tuple[str | None, str]] = [
        ("Results (test split)", results),
        ("Score against labels", hp.figure(plot, caption)),
    ]
    adaptation = []
    for init, rep in summary["adaptation"].items():
        if not rep:
            continue
        body = [
            [b["band"], b["rule"] + (f" ({b['note']})" if b.get("note") else ""), b["source"] or "",
             "" if b["rule"] == "dropped" else f"{b['scale']:.4g}"]
            for b in rep["bands"]
        ]  # fmt: skip
        adaptation.append(
            f"<p><b>{hp.esc(init)}</b>: layer <code>{hp.esc(rep['layer'])}</code>, rule {hp.esc(rep['rule'])}, "
            f"alpha {rep['alpha']:.4g}.</p>" + hp.table(["band", "rule", "source band", "scale"], body, text_columns=3)
        )
    sections.append(
        (
            "First-layer adaptation",
            "<p>How the first layer's weights of the source bands were mapped to the target's bands.</p>"
            + ("".join(adaptation) or "<p>No pretrained initialisation was run.</p>"),
        )
    )
    settings = {
        "checkpoint": src["path"],
        "checkpoint sha256": src["sha256"],
        "source bands": src["bands"],
        "source classes": src["class_set"],
        "input px": src["input_size"],
        "target store": tgt["store"],
        "target splits": tgt["split_source"],
        "target patches": tgt["patches"],
        "bands (target order)": summary["bands"],
        "normalisation": tgt["stats_source"],
        "resolution": summary["resolution"]["describe"],
        "loss": proto["loss"],
        "ImageNet": summary["imagenet"],
        "torch": summary["env"]["torch"],
    }
    sections.append(
        ("Settings", hp.key_values(settings) + hp.details("Configuration of the sweep", hp.key_values(cfg)))
    )
    return hp.page(f"Transfer: {src['arch']} -> {proto['dataset']} ({cfg['mode']})", sections, lead=lead)


def write_outputs(out: Path, summary: dict[str, Any]) -> dict[str, Path]:
    """transfer.json, transfer_runs.csv, transfer_table.csv/.md, score_vs_fraction.png, report.md and report.html."""
    paths = {
        "json": out / "transfer.json",
        "runs": out / "transfer_runs.csv",
        "table_csv": out / "transfer_table.csv",
        "table_md": out / "transfer_table.md",
        "plot": out / "score_vs_fraction.png",
        "report": out / "report.md",
        "html": out / "report.html",
    }
    atomic_write_text(paths["json"], json.dumps(_jsonable(summary), indent=2) + "\n")
    run_cols = ["init", "fraction", "seed", "n_train", "classes_in_train", "score_name", "score"]
    metric_cols = sorted({k for r in summary["runs"] for k in r["test"]})
    cost_cols = ["params", "trainable_params", "macs", "input_size", "epochs", "steps", "train_time_s", "train_img_s",
                 "infer_img_s_model", "infer_img_s_e2e", "peak_mem_bytes", "feature_time_s"]  # fmt: skip
    runs = io.StringIO()
    w = csv.writer(runs)
    w.writerow([*run_cols, *(f"test_{m}" for m in metric_cols), "val_epoch", *cost_cols, "hardware"])
    for r in summary["runs"]:
        w.writerow(
            [r[c] for c in run_cols]
            + [r["test"].get(m) for m in metric_cols]
            + [r["val"].get("epoch")]
            + [r["cost"].get(c) for c in cost_cols]
            + [summary["env"]["hardware"]]
        )
    atomic_write_text(paths["runs"], runs.getvalue())
    if summary["table"]:
        cols = list(summary["table"][0])
        table = io.StringIO()
        dw = csv.DictWriter(table, fieldnames=[*cols, "hardware"])
        dw.writeheader()
        for row in summary["table"]:
            dw.writerow({**row, "hardware": summary["env"]["hardware"]})
        atomic_write_text(paths["table_csv"], table.getvalue())
    atomic_write_text(paths["table_md"], table_markdown(summary) + "\n")
    make_plot(summary, paths["plot"])
    atomic_write_text(paths["report"], _report(summary, paths["plot"]))
    atomic_write_text(paths["html"], _html(summary, paths["plot"]))
    return paths
