"""``landzoo export``: turn a checkpoint into a folder laid out like a model-hub repository."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write a checkpoint as a model-hub folder (weights, config.json, model card README.md)",
        description="Write CHECKPOINT (x.safetensors + x.json, or a checkpoint folder) as a folder laid out like a "
        "model-hub repository: model.safetensors, landzoo.json (the sidecar), config.json (architecture + data "
        "contract) and README.md (model card: bands, classes, normalisation, metrics, how to load it). "
        "The weights' checksum is verified first; no model code is needed.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", type=Path, help="x.safetensors, its x.json, or a folder")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write (created if absent)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.export import export_checkpoint

    paths = export_checkpoint(args.checkpoint, args.out, overwrite=args.overwrite)
    for p in paths.values():
        print(p)
    return 0
