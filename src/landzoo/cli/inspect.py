"""``landzoo inspect``: read a raw dataset folder through its reader and summarise it."""

from __future__ import annotations

import argparse
import json
import sys

from landzoo.cli._reader_options import add_reader_options, reader_arguments
from landzoo.datasets import READERS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="read a raw dataset folder and print patches per split, label frequencies and bad patches",
        description="Read every patch of a raw dataset folder (pixels included, so broken files are found) "
        "and print patches per split, label frequencies and any bad patches. Patches that a split list names but "
        "that are absent on disk are counted per split and shown in a line of their own (--missing report, the "
        "default for every dataset), or are each a bad patch (--missing error).",
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
    from landzoo.datasets.summary import format_summary, missing_line, summarise

    reader = open_dataset(
        args.dataset,
        args.root,
        bands=args.bands,
        classes=args.classes,
        on_bad="raise" if args.strict else "skip",
        **reader_arguments(args),
    )
    summary = summarise(reader, progress=not args.json, limit=args.limit)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.json and summary["missing_from_disk"]:
        print(missing_line(summary["missing_from_disk"]), file=sys.stderr)
    return 1 if summary["bad_patches"] else 0
