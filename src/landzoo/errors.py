"""The project's error base class: the CLI turns any of these into one line on stderr and exit code 2."""

from __future__ import annotations

import importlib
import re


class LandzooError(Exception):
    """A user-facing error: bad input, bad option, damaged file. Its message is the whole story."""


# torch re-raises an exception of a DataLoader worker as "Caught <Type> in DataLoader worker process N." plus
# the worker's traceback, as the same type if it can be built from one message, else as a RuntimeError
_WORKER_MESSAGE = re.compile(r"Caught \w+ in DataLoader worker process \d+\.\s*\nOriginal Traceback", re.DOTALL)


def user_message(err: BaseException) -> str | None:
    """The one-line message of a landzoo error, also when it was raised in a DataLoader worker process.

    ``None`` for anything else (a bug, whose traceback the user should see).
    """
    text = str(err)
    if not _WORKER_MESSAGE.match(text):
        return text if isinstance(err, LandzooError) else None
    name, _, message = text.rstrip().splitlines()[-1].partition(": ")
    module, _, cls_name = name.rpartition(".")
    if not module.startswith("landzoo"):
        return None
    try:
        cls = getattr(importlib.import_module(module), cls_name, None)
    except ImportError:
        return None
    return message if isinstance(cls, type) and issubclass(cls, LandzooError) else None
