"""The ``landzoo`` command: one sub-command per module of this package.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets ``func``.
Heavy imports (torch, rasterio) happen inside the commands, so ``landzoo --help`` is instant.
Any :class:`~landzoo.errors.LandzooError` becomes one line on stderr and exit code 2; an ``OSError`` (a full
disk, a read-only folder, a missing permission) one line naming the path and exit code 1; a closed pipe
(``landzoo info STORE | head``) ends the command quietly with the shell's SIGPIPE status, 141.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from landzoo import __version__
from landzoo.errors import LandzooError
from landzoo.files import os_error_message

#: Sub-command modules under ``landzoo.cli``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "generate",
    "inspect",
    "fit",
    "evaluate",
    "predict",
    "map",
    "benchmark",
    "encode",
    "verify",
    "info",
    "bench_io",
    "bench_map",
    "export",
    "transfer",
    "models",
    "scale",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="landzoo",
        description="Benchmark, scale, train and transfer deep models for Sentinel-2 land-cover classification.",
    )
    parser.add_argument("--version", action="version", version=f"landzoo {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"landzoo.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except LandzooError as err:
        print(f"landzoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"landzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of our output went away (``| head``): nothing more to say; keep Python's exit-time
        # flush of stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        print(f"landzoo {args.command}: error: {os_error_message(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
