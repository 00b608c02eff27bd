"""Arguments shared by the commands that score a store split with a checkpoint (``test``, ``predict``).

Both take the same checkpoint, store and loader options, and both check their inputs and their output
folder before anything is loaded or computed: a typo in ``--out`` costs a second, not a whole evaluation.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a batch size of 0 or -4 is an error at the command line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_scoring_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    """The checkpoint, the store, the split and how to read it."""
    p.add_argument("checkpoint", type=Path, help="run folder, Lightning .ckpt, model.safetensors or export folder")
    p.add_argument("--data", required=True, type=Path, help="store folder (`landzoo encode` writes one)")
    p.add_argument("--split", default="test", help=f"split to {verb} (default: test)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: the training config's)")
    p.add_argument("--workers", type=int, help="loader worker processes (default: the training config's)")
    p.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (default)")


def check_scoring_inputs(args: argparse.Namespace, out: Path | None) -> None:
    """Refuse what would fail late: a store that is not one (a GeoTIFF, a raw folder), an unwritable output."""
    from landzoo.files import check_writable_dir
    from landzoo.store.reader import check_store_folder

    check_store_folder(args.data)
    if out is not None:
        check_writable_dir(out.parent if str(out.parent) else Path("."), what=f"the folder of --out {out}")


def scoring_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``landzoo.training`` ``test``/``predict`` from the shared arguments."""
    return {
        "split": args.split,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "accelerator": args.accelerator,
    }
