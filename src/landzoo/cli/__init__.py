"""The ``landzoo`` command: one sub-command per module of this package.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets ``func``.
Heavy imports (torch, rasterio) happen inside the commands, so ``landzoo --help`` is instant.
Any :class:`~landzoo.errors.LandzooError` becomes one line on stderr and exit code 2; an ``OSError`` (a full
disk, a read-only folder, a missing permission) one line naming the path and exit code 1; a closed pipe
(``landzoo info STORE | head``) ends the command quietly with the shell's SIGPIPE status, 141; SIGTERM and
Ctrl-C unwind the command (temporary files removed) and say how to resume, with status 143 and 130.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence

from landzoo import __version__
from landzoo.errors import LandzooError, user_message
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
    "bench_train",
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


#: Commands that run a Lightning Trainer: Lightning's SIGTERM handler (which calls any handler installed before
#: it) saves a checkpoint and stops the run at the end of a step; raising from a handler of ours would cut that
#: short, so these commands leave SIGTERM to it.
TRAINER_COMMANDS = frozenset({"demo", "fit", "test", "predict", "benchmark", "transfer", "scale"})


#: What to do after a SIGTERM, for the commands without a Trainer that keep or refuse earlier output.
_AFTER_SIGTERM = {
    "encode": "run the same command again to continue where it stopped",
    "map": "run the same command again to continue where it stopped (finished scenes are kept)",
    "export": "nothing half-written was left; run it again with --overwrite",
    "generate": "run it again with --overwrite",
}


class Terminated(BaseException):
    """SIGTERM (a cluster's preemption, ``kill``) turned into an exception, so ``finally`` blocks clean up.

    A BaseException like KeyboardInterrupt: no ``except Exception`` swallows it. Lightning installs its own
    SIGTERM handler while a Trainer runs (it checkpoints and stops ``fit``); this one covers everything else.
    """


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command not in TRAINER_COMMANDS and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return code
    except (LandzooError, RuntimeError) as err:
        message = user_message(err)  # a landzoo error, also one raised in a DataLoader worker process
        if message is None:
            raise
        print(f"landzoo {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"landzoo {args.command}: interrupted", file=sys.stderr)
        return 130
    except Terminated:
        after = _AFTER_SIGTERM.get(args.command, "run it again")
        print(f"landzoo {args.command}: terminated (SIGTERM); {after}", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # the reader of our output went away (``| head``): nothing more to say; keep Python's exit-time
        # flush of stdout from raising again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as err:
        print(f"landzoo {args.command}: error: {os_error_message(err)}", file=sys.stderr)
        return 1


def entry() -> None:
    """The process entry point (the ``landzoo`` script, ``python -m landzoo``): :func:`main`, then exit.

    After a closed output pipe (status 141) the process ends at once with ``os._exit``: nothing is left to write,
    and skipping the interpreter's teardown avoids a native library's thread-teardown race that, on a loaded
    machine, turned about one such exit in fifteen into SIGABRT ("terminate called without an active exception").
    """
    code = main()
    if code == 141:
        sys.stderr.flush()
        os._exit(141)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
