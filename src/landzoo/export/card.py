"""The model card (``README.md``) of an exported model: data contract, metrics, how to load it, provenance."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from landzoo import contract
from landzoo.checkpoint import CheckpointMeta, _names

__all__ = ["render_model_card"]


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "n/a" if v is None else str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "n/a"
        if v.is_integer() and abs(v) >= 2:
            return f"{v:.0f}"
        return f"{v:.4f}"
    return str(v)


def _md_cell(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) or v is None


_SPLITS = ("train", "val", "test")


def _metric_tables(metrics: Mapping[str, Any]) -> list[str]:
    """Markdown tables for the metrics dict: flat ``{name: value}``, ``{split: {name: value}}`` or
    ``{"<split>_<name>": value}`` (pivoted to one column per split); ``per_class`` blocks get their own table."""
    columns: dict[str, dict[str, Any]] = {}
    per_class: dict[str, Mapping[str, Any]] = {}
    other: list[str] = []
    for key, value in metrics.items():
        if key == "per_class" and isinstance(value, Mapping):
            per_class["all"] = value
        elif isinstance(value, Mapping):
            for k, v in value.items():
                if k == "per_class" and isinstance(v, Mapping):
                    per_class[key] = v
                elif _is_number(v):
                    columns.setdefault(key, {})[k] = v
                else:
                    other.append(f"{key}.{k}")
        elif _is_number(value):
            split, _, name = key.partition("_")
            if split in _SPLITS and name:
                columns.setdefault(split, {})[name] = value
            else:
                columns.setdefault("value", {})[key] = value
        else:
            other.append(key)
    out = []
    if columns:
        names: list[str] = []
        for col in columns.values():
            names += [n for n in col if n not in names]
        cols = list(columns)
        out.append(_table(["metric", *cols], [[n, *(_fmt(columns[c].get(n)) for c in cols)] for n in names]))
    for split, rows in per_class.items():
        fields: list[str] = []
        for row in rows.values():
            if isinstance(row, Mapping):
                fields += [f for f, v in row.items() if f not in fields and _is_number(v)]
        title = "Per-class metrics" + ("" if split == "all" else f" ({split})")
        body = [[name, *(_fmt(row.get(f)) for f in fields)] for name, row in rows.items() if isinstance(row, Mapping)]
        out.append(f"**{title}**\n\n" + _table(["class", *fields], body))
    if other:
        out.append("Other entries (see `landzoo.json`): " + ", ".join(f"`{o}`" for o in other))
    return out


def _band_groups(config: Mapping[str, Any]) -> list[str]:
    groups = config.get("band_groups") or {}
    px = {i["name"]: i["shape"][-1] for i in config.get("graph_inputs") or []}
    rows = [[g, ",".join(b), px.get(g, "")] for g, b in groups.items()]
    return [
        "Band groups (bands sharing a pixel grid; landzoo stores and feeds each at its native resolution):",
        _table(["group", "bands", "px in the graphs"], rows),
    ]


def _loading(meta: CheckpointMeta, config: Mapping[str, Any] | None) -> list[str]:
    dc = meta.contract
    out = [
        "## How to load it",
        "With landzoo (the model takes the raw band groups as a dict, or the stacked normalised tensor):",
        _code(
            "import landzoo",
            "",
            'loaded = landzoo.load_model("THIS_FOLDER")   # checks the weights against landzoo.json',
            "loaded.contract.check_compatible(data_bands, data_classes)  # refuses other band/class orders",
            "probs = loaded.model.predict_proba(band_groups)  # {group: raw tensor [B, C, H, W]} -> [B, classes]",
        ),
        'The lower-level calls: `landzoo.checkpoint.load_checkpoint("THIS_FOLDER")` (state dict and metadata) and '
        '`landzoo.checkpoint.build_model_from_checkpoint("THIS_FOLDER")`.',
    ]
    if not config:
        return out
    args = ", ".join(f"{k}={v!r}" for k, v in config["model_args"].items())
    size = tuple(config["pretrained_cfg"]["input_size"])
    out += [
        "With timm (`import landzoo` first: it registers landzoo's own architectures in timm):",
        _code(
            "import landzoo, timm",
            "",
            'net = timm.create_model("local-dir:THIS_FOLDER", pretrained=True)',
            "# or from the weights file alone:",
            f'net = timm.create_model("{config["architecture"]}", pretrained=True, {args},',
            '                        pretrained_cfg_overlay=dict(file="THIS_FOLDER/model.safetensors", '
            f"num_classes={len(dc.classes)}, input_size={size}))",
        ),
        f"timm's network takes the stacked input `float32[B, {len(dc.bands)}, {dc.input_size}, {dc.input_size}]`: "
        "the bands in the channel order above, each normalised with its `mean`/`std` (raw units, also in "
        "`config.json`'s `pretrained_cfg`) and resampled to the input size. Its weights are the checkpoint's "
        "without landzoo's `backbone.` prefix.",
    ]
    graphs = config.get("graphs") or []
    if graphs:
        inputs = config.get("graph_inputs") or []
        rows = [
            [i["name"], "x".join(map(str, i["shape"])), i["dtype"], ",".join(i["bands"]), i["values"]] for i in inputs
        ]
        checks = [[r["file"], r["format"], f"{r['max_abs_diff']:.3g}", f"{r['tolerance']:g}"] for r in graphs]
        feed = ", ".join(f'"{i["name"]}": x_{i["name"]}' for i in inputs)
        positional = ", ".join(f"x_{i['name']}" for i in inputs)
        files = {r["format"]: r["file"] for r in graphs}
        lines = ["import onnxruntime, torch", ""]
        if "onnx" in files:
            lines.append(
                f'logits, probs = onnxruntime.InferenceSession("THIS_FOLDER/{files["onnx"]}").run(None, {{{feed}}})'
            )
        if "torchscript" in files:
            lines.append(f'logits, probs = torch.jit.load("THIS_FOLDER/{files["torchscript"]}")({positional})')
        if "torch-export" in files:
            lines.append(
                f'logits, probs = torch.export.load("THIS_FOLDER/{files["torch-export"]}").module()({positional})'
            )
        out += [
            "### Graphs (no model code needed)",
            "Inputs (the batch size is free), outputs `logits` and `probabilities`, "
            f"`float32[batch, {len(dc.classes)}]` in the class order above:",
            _table(["input", "shape", "dtype", "bands", "values"], rows),
            "Each file was loaded back and compared with the PyTorch model when it was written:",
            _table(["file", "format", "max abs difference", "tolerance"], checks),
            _code(*lines),
        ]
    return out


def _code(*lines: str) -> str:
    return "```python\n" + "\n".join(lines) + "\n```"


def render_model_card(meta: CheckpointMeta, *, config: Mapping[str, Any] | None = None) -> str:
    """The ``README.md`` of an exported model: contract, metrics table, loading snippets, config, provenance.

    ``config``: the folder's ``config.json`` (:func:`landzoo.export.hub.timm_config`), for the timm and graph
    sections and the band groups.
    """
    import yaml

    dc = meta.contract
    tags = ["landzoo", "sentinel-2", "land-cover", "remote-sensing", "image-classification", meta.arch, dc.class_set]
    front = yaml.safe_dump(
        {"library_name": "landzoo", "tags": tags, "pipeline_tag": "image-classification"}, sort_keys=False
    )
    band_rows = [
        [i, b, contract.BANDS[b].sensor, f"{contract.BANDS[b].gsd_m} m", _fmt(m), _fmt(s)]
        for i, (b, (m, s)) in enumerate(dc.stats.items())
    ]
    parts = [
        f"---\n{front}---",
        f"# {meta.arch}: {dc.class_set} land-cover classifier ({len(dc.bands)} bands, {dc.input_size} px)",
        "Exported by `landzoo export`. The weights only make sense with the data contract below: feed the bands "
        "in exactly this order, normalised as `(x - mean) / std` with raw values (Sentinel-2 digital numbers, "
        f"Sentinel-1 dB), each band group resampled ({dc.resample}) to {dc.input_size} x {dc.input_size} px. "
        "The outputs are one logit per class, in the class order below (sigmoid for probabilities).",
        "## Data contract",
        f"Input bands, channel order: `{_names(dc.bands)}`",
        _table(["channel", "band", "sensor", "native GSD", "mean", "std"], band_rows),
        f"Input size: {dc.input_size} x {dc.input_size} px; resampling: {dc.resample}.",
        f"Classes ({dc.class_set}, {len(dc.classes)} outputs, in order):",
        "\n".join(f"{i}. {c}" for i, c in enumerate(dc.classes)),
        "## Metrics",
        *(_metric_tables(meta.metrics) or ["No metrics were recorded with this checkpoint."]),
        "Metric definitions: landzoo `docs/metrics.md` (threshold 0.5 unless the config says otherwise; "
        "`paper_accuracy_*` is the Jaccard-style accuracy of Papoutsis et al.).",
        "## Architecture",
        f"`{meta.arch}` with arguments `{json.dumps(meta.arch_kwargs, sort_keys=True)}`; "
        f"{meta.num_values:,} stored values in {meta.num_tensors} tensors (parameters and buffers such as "
        "normalisation statistics).",
        *(_band_groups(config) if config else []),
        *_loading(meta, config),
        "## Training configuration",
        "```yaml\n" + (yaml.safe_dump(meta.config, sort_keys=False).rstrip() if meta.config else "{}") + "\n```",
        "## Provenance",
        _table(
            ["item", "value"],
            [
                ["landzoo version", meta.landzoo_version],
                ["git commit", (meta.git_commit or "unknown") + (" (uncommitted changes)" if meta.git_dirty else "")],
                ["created", meta.created],
                ["checkpoint schema", meta.schema_version],
                ["checkpoint weights sha256", f"`{meta.weights_sha256}`"],
            ],
        ),
    ]
    return "\n\n".join(parts) + "\n"
