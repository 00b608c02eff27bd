"""``landzoo inspect``: read a raw dataset folder through its reader and summarise it."""

from __future__ import annotations

import argparse
import json

from landzoo.cli._reader_options import add_reader_options, parse_options
from landzoo.datasets import READERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="read a raw dataset folder and print patches per split, label frequencies and bad patches",
        description="Read every patch of a raw dataset folder (pixels included, so broken files are found) "
        "and print patches per split, label frequencies and any bad patches.",
    )
    p.add_argument("root", metavar="DIR", help="dataset folder (as downloaded, or as written by `landzoo generate`)")
    p.add_argument("--dataset", required=True, choices=sorted(READERS), help="dataset format of DIR")
    p.add_argument("--bands", default=None, help="band selection name or comma list (default: the dataset's)")
    p.add_argument("--classes", default=None, help="class set (default: the dataset's first, e.g. ben19)")
    p.add_argument(
        "--strict", action="store_true", help="stop at the first bad patch instead of listing every bad patch"
    )
    add_reader_options(p)
    p.add_argument("--limit", type=int, default=None, help="read only the first N patches of the index")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.datasets import open_dataset
    from landzoo.datasets.summary import format_summary, summarise

    reader = open_dataset(
        args.dataset,
        args.root,
        bands=args.bands,
        classes=args.classes,
        on_bad="raise" if args.strict else "skip",
        **parse_options(args.option),
    )
    summary = summarise(reader, progress=not args.json, limit=args.limit)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 1 if summary["bad_patches"] else 0
