"""``landzoo export``: turn a checkpoint into a folder that timm loads, with ONNX / TorchScript / torch.export graphs."""

from __future__ import annotations

import argparse
from pathlib import Path

from landzoo.errors import LandzooError

#: What ``--format`` accepts besides the graph formats (``hub``: the folder alone; ``all``: every graph).
GRAPH_FORMATS = ("onnx", "torchscript", "torch-export")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as a folder timm loads (weights, config.json, model card), optionally ONNX etc.",
        description="Write CHECKPOINT (x.safetensors + x.json, a checkpoint or run folder) as a folder laid out like "
        "a model-hub repository: model.safetensors (timm's key names), config.json (timm's config with the "
        "per-band mean/std, plus the data contract), landzoo.json (the sidecar) and README.md (model card). "
        'timm.create_model("local-dir:DIR", pretrained=True) loads it; the export checks that it does. With '
        "--format, also model.onnx / model.torchscript.pt / model.pt2: one graph from the raw band groups to "
        "logits and probabilities, batch size free, loaded back with onnxruntime / torch.jit / torch.export and "
        "compared with PyTorch (max abs difference printed; above --tolerance the export fails).",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help="x.safetensors, its x.json, or a folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write (created if absent)")
    p.add_argument(
        "--format",
        default="hub",
        metavar="FORMATS",
        help=f"comma list of hub (the folder alone, default), {', '.join(GRAPH_FORMATS)}, all (every graph)",
    )
    p.add_argument(
        "--inputs",
        choices=("groups", "stacked"),
        default="groups",
        help="graph inputs: raw band groups at native resolution (default) or one normalised stacked tensor",
    )
    p.add_argument(
        "--group-px",
        action="append",
        default=[],
        metavar="GROUP=PX",
        help="side of a band group's input in pixels, e.g. 10m=256 (default: a BigEarthNet patch, 120/60/20 px, "
        "or the model's input size for data on one 10 m grid); repeatable",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max abs difference allowed (default 1e-4)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty DIR")
    p.set_defaults(func=run)


def parse_formats(text: str) -> list[str]:
    """``"hub"`` -> []; ``"onnx,torchscript"`` -> both; ``"all"`` -> every graph format; unknown names refused."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    out: list[str] = []
    for name in names:
        if name == "all":
            out += [f for f in GRAPH_FORMATS if f not in out]
        elif name in GRAPH_FORMATS:
            out += [name] if name not in out else []
        elif name != "hub":
            raise LandzooError(f"--format: unknown format {name!r}; choose from hub, {', '.join(GRAPH_FORMATS)}, all")
    return out


def parse_group_px(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        group, sep, px = item.partition("=")
        if not sep or not px.strip().isdigit():
            raise LandzooError(f"--group-px: expected GROUP=PX such as 10m=120, got {item!r}")
        out[group.strip()] = int(px)
    return out


def run(args: argparse.Namespace) -> int:
    formats = parse_formats(args.format)
    group_px = parse_group_px(args.group_px)
    if not formats and (group_px or args.inputs != "groups"):
        raise LandzooError(
            "--inputs and --group-px shape the graphs: add --format onnx, torchscript, torch-export or all"
        )
    if not args.tolerance >= 0:
        raise LandzooError(f"--tolerance must be a non-negative number, not {args.tolerance}")
    from landzoo.export import export_checkpoint

    export_checkpoint(
        args.checkpoint,
        args.out,
        overwrite=args.overwrite,
        formats=formats,
        inputs=args.inputs,
        group_px=group_px,
        tolerance=args.tolerance,
        log=lambda line: print(line, flush=True),
    )
    return 0
