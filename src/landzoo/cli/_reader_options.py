"""``-o KEY=VALUE`` reader options, shared by every command that opens a raw dataset."""

from __future__ import annotations

import argparse
from typing import Any

from landzoo.datasets import DatasetError


def add_reader_options(p: argparse.ArgumentParser) -> None:
    """Add the repeatable ``-o/--option KEY=VALUE`` argument (stored as ``args.option``)."""
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra reader option, repeatable, e.g. -o missing=report (v2/SEN12MS subset of a listed dataset), "
        "-o metadata=/path/metadata.parquet, -o drop_snow_cloud=false, -o patch_px=64",
    )


#: Reader arguments that have their own flags on every command that opens a raw dataset.
FLAGGED = {"bands": "--bands", "classes": "--classes", "on_bad": "--strict / --skip-bad"}


def parse_options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> reader keyword arguments (true/false -> bool, integers and floats as numbers)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise DatasetError(f"reader option {item!r} is not of the form KEY=VALUE")
        if key in FLAGGED:
            raise DatasetError(f"reader option {key!r} is set by its own command-line flag ({FLAGGED[key]}), not by -o")
        low = value.lower()
        parsed: Any = value
        if low in ("true", "false"):
            parsed = low == "true"
        else:
            for cast in (int, float):
                try:
                    parsed = cast(value)
                    break
                except ValueError:
                    pass
        out[key] = parsed
    return out
