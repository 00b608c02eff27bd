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


def render_model_card(meta: CheckpointMeta) -> str:
    """The ``README.md`` of an exported model: contract, metrics table, loading snippet, config, provenance."""
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
        "## How to load it",
        "```python\n"
        "from landzoo.checkpoint import load_checkpoint, build_model_from_checkpoint\n\n"
        'state_dict, meta = load_checkpoint("THIS_FOLDER")   # checks the weights against landzoo.json\n'
        "meta.contract.check_compatible(data_bands, data_classes)  # refuses other band/class orders\n"
        'model, meta = build_model_from_checkpoint("THIS_FOLDER")  # the zoo model with these weights\n'
        "```",
        "Without landzoo: `model.safetensors` is a plain safetensors file (its header repeats the band order); "
        "`config.json` holds the architecture and the data contract.",
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
                ["weights sha256", f"`{meta.weights_sha256}`"],
            ],
        ),
    ]
    return "\n\n".join(parts) + "\n"
