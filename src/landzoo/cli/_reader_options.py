"""Reader arguments on the command line, shared by every command that opens a raw dataset.

``-o KEY=VALUE`` sets one of the reader's own options (the fields of its ``Options`` dataclass); the reader
converts the text by the option's declared type (:mod:`landzoo.datasets.options`). The arguments every reader
takes have flags of their own (``--bands``, ``--classes``, ``--strict``/``--skip-bad``, ``--missing``).
"""

from __future__ import annotations

import argparse
from typing import Any

#: The policy for listed patches absent on disk, as every command that reads a raw dataset states it.
MISSING_HELP = (
    "listed patches that are absent on disk (a partial download, a subset): 'report' (default) counts them per "
    "split, prints a line and records them (inspect output, STORE/report.json) and reads the rest; 'error' makes "
    "each one a bad patch naming it (stops, unless bad patches are listed instead of stopping)"
)

#: Each reader's own options, for ``--help`` without importing the readers (the CLI starts fast); a test keeps
#: this equal to the readers' ``Options`` dataclasses, whose field docstrings say what each option does.
READER_OPTIONS = {
    "bigearthnet-v1": ("split_files", "s1_root", "drop_snow_cloud"),
    "bigearthnet-v2": (
        "metadata",
        "snow_cloud_metadata",
        "s2_dir",
        "s1_dir",
        "reference_maps_dir",
        "include_snow_cloud",
        "reference_map",
    ),
    "sen12ms": (
        "labels_path",
        "label_source",
        "multilabel_threshold",
        "single_label",
        "train_list",
        "test_list",
        "holdout_scenes",
        "val_scenes",
        "seed",
        "patch_px",
    ),
    "eurosat": ("split_files", "geo", "patch_px"),
}

#: Reader arguments that have their own command-line flags, not -o.
FLAGGED = {
    "bands": "--bands",
    "classes": "--classes",
    "on_bad": "--strict / --skip-bad",
    "missing": "--missing",
}
#: Reader arguments the command line does not set, and why.
PYTHON_ONLY = {"splits": "commands read every split", "transforms": "it is a Python callable"}


def add_reader_options(p: argparse.ArgumentParser) -> None:
    """Add ``-o/--option KEY=VALUE`` (stored as ``args.option``) and ``--missing`` (``args.missing``)."""
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one of the reader's own options, repeatable; VALUE is converted by the option's type: true/false, "
        "a number, a path, none, SPLIT=PATH pairs separated by commas, names separated by commas. E.g. "
        "-o drop_snow_cloud=false, -o split_files=train=tr.csv,test=te.csv, -o metadata=/path/metadata.parquet, "
        "-o val_scenes=4. Options by dataset: "
        + "; ".join(f"{name}: {', '.join(keys)}" for name, keys in READER_OPTIONS.items()),
    )
    p.add_argument("--missing", choices=("report", "error"), default="report", help=MISSING_HELP)


def parse_options(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings -> ``{KEY: VALUE}`` (text; the reader converts each by its option's type)."""
    from landzoo.datasets.errors import DatasetError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise DatasetError(f"reader option {item!r} is not of the form KEY=VALUE")
        if key in PYTHON_ONLY:
            raise DatasetError(f"reader argument {key!r} is not set on the command line ({PYTHON_ONLY[key]})")
        if key in FLAGGED:
            raise DatasetError(
                f"reader argument {key!r} is set by its own command-line flag ({FLAGGED[key]}), not by -o"
            )
        if key in out:
            raise DatasetError(f"reader option {key!r} is given twice")
        out[key] = value
    return out


def reader_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The reader's options from ``-o`` (converted by type) and ``--missing``, for ``open_dataset(..., **kw)``.

    Only what the user set, as converted values: ``encode`` records these in the store's plan, so the defaults must
    not appear there (an encode started without ``-o`` options before ``--missing`` existed still resumes, and
    Python's ``encode()`` plans the same). An encode interrupted under an older landzoo *with* ``-o`` options
    recorded their raw text and is refused as "other options": start it again into a new folder.
    """
    from landzoo.datasets import reader_class
    from landzoo.datasets.options import make_options

    cls = reader_class(args.dataset)
    options = make_options(cls.name, cls.Options, parse_options(args.option))
    given = {k: getattr(options, k) for k in parse_options(args.option)}
    return given if args.missing == "report" else {**given, "missing": args.missing}
