"""Reader options: each reader's own settings, declared once as a frozen dataclass and converted by type.

Why: options reach a reader as Python values (``open_dataset(..., split_files={"train": path})``) and as
command-line text (``-o split_files=train=a.csv,val=b.csv``). One converter, driven by each field's declared
type, turns either into the right value or into a one-line :class:`DatasetError` naming the reader, the
option and the syntax expected, so a string is never iterated character by character and a typo never
becomes a ``TypeError``.

Text syntax by declared type:

* ``bool``: ``true``/``false`` (also ``yes``/``no``, ``1``/``0``); ``int``, ``float``: numbers; ``Path``: a path;
* ``X | None``: ``none`` means None (write ``./none`` for a file of that name);
* ``Literal["a", "b"]``: one of the choices;
* ``Mapping[Split, Path]``: ``train=a.csv,val=b.csv,test=c.csv`` (an empty value is an empty mapping);
* ``tuple[str, ...]``: names separated by commas;
* a union of several (``int | float | tuple[str, ...]``): the first member the text converts to.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from landzoo.datasets.errors import DatasetError

__all__ = ["COMMON_ARGUMENTS", "NoOptions", "Split", "SplitFiles", "convert", "make_options", "option_names"]

#: The split names every reader uses.
Split = Literal["train", "val", "test"]
#: A split list per split, e.g. ``{"train": Path("train.csv"), "test": Path("test.csv")}``.
SplitFiles = Mapping[Split, Path]

#: Arguments every reader takes (:class:`landzoo.datasets.base.Reader`), which are not reader options.
COMMON_ARGUMENTS = ("bands", "classes", "splits", "on_bad", "missing", "transforms")
#: Where the command line sets the common arguments (``-o`` sets only a reader's own options).
COMMON_FLAGS = {"bands": "--bands", "classes": "--classes", "on_bad": "--strict/--skip-bad", "missing": "--missing"}

_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A reader with no options of its own."""


class _Invalid(ValueError):
    """A value that does not convert to a type (the message says what was expected)."""


def option_names(options_cls: type) -> tuple[str, ...]:
    """The option names a reader's ``Options`` dataclass declares, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(options_cls))


def make_options(reader: str, options_cls: type, values: Mapping[str, Any]) -> Any:
    """Build ``options_cls`` from ``values`` (Python values or command-line strings), converting each by type.

    An unknown name is one error line listing the reader's options and saying where the common arguments go.
    """
    names = option_names(options_cls)
    unknown = [k for k in values if k not in names]
    if unknown:
        own = ", ".join(names) if names else "none"
        raise DatasetError(
            f"{reader} reader has no option {', '.join(unknown)}; its own options (-o KEY=VALUE): {own}. "
            f"The arguments every reader takes ({', '.join(COMMON_ARGUMENTS)}) are not options; on the command "
            f"line they have flags: {', '.join(COMMON_FLAGS.values())}"
        )
    hints = typing.get_type_hints(options_cls)
    converted = {k: convert(reader, k, hints[k], v) for k, v in values.items()}
    return options_cls(**converted)


def convert(reader: str, name: str, hint: Any, value: Any) -> Any:
    """``value`` as the declared type ``hint``; a :class:`DatasetError` naming reader and option otherwise."""
    try:
        return _convert(hint, value)
    except _Invalid as err:
        raise DatasetError(f"{reader} option {name}: expected {err}, got {value!r}") from None


def _describe(hint: Any) -> str:
    """How a value of ``hint`` is written, for error messages."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is Path:
        return "a path"
    if hint is str:
        return "a name"
    if origin is Literal:
        return "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or none" if type(None) in args else "")
    if origin in (Mapping, dict, typing.Mapping):
        keys = typing.get_args(args[0]) if typing.get_origin(args[0]) is Literal else ("key",)
        example = ",".join(f"{k}={k}.{'csv' if args[1] is Path else 'x'}" for k in keys)
        key = "SPLIT" if args[0] == Split else "KEY"
        return f"{key}={_placeholder(args[1])} pairs separated by commas, e.g. {example} ({key}: {', '.join(keys)})"
    if origin in (tuple, Sequence):
        return "names separated by commas"
    return str(hint)


def _placeholder(hint: Any) -> str:
    return "PATH" if hint is Path else "VALUE"


def _convert(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _convert_union(hint, args, value)
    if origin is Literal:
        if value not in args:
            raise _Invalid(_describe(hint))
        return value
    if origin in (Mapping, dict, typing.Mapping):
        return _convert_mapping(hint, args, value)
    if origin in (tuple, Sequence):
        return _convert_names(hint, args, value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in (*_TRUE, *_FALSE):
            return value.strip().lower() in _TRUE
        raise _Invalid(_describe(hint))
    if hint in (int, float):
        return _convert_number(hint, value)
    if hint is Path:
        if isinstance(value, str | os.PathLike) and str(value).strip():
            return Path(value)
        raise _Invalid(_describe(hint))
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Invalid(_describe(hint))
    raise TypeError(f"reader options of type {hint} are not supported")  # a programming error, not user input


def _convert_number(hint: type, value: Any) -> Any:
    if isinstance(value, bool):
        raise _Invalid(_describe(hint))
    if isinstance(value, int) or (hint is float and isinstance(value, float)):
        return hint(value)
    if isinstance(value, str):
        try:
            return hint(value.strip())
        except ValueError:
            pass
    raise _Invalid(_describe(hint))


def _convert_union(hint: Any, args: tuple[Any, ...], value: Any) -> Any:
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        if type(None) in args:
            return None
        raise _Invalid(_describe(hint))
    for member in args:
        if member is type(None):
            continue
        try:
            return _convert(member, value)
        except _Invalid:
            continue
    raise _Invalid(_describe(hint))


def _convert_mapping(hint: Any, args: tuple[Any, ...], value: Any) -> dict[Any, Any]:
    key_hint, value_hint = args
    if isinstance(value, str):
        items = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            key, sep, item = part.partition("=")
            if not sep or not key.strip() or not item.strip():
                raise _Invalid(_describe(hint))
            items.append((key.strip(), item.strip()))
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise _Invalid(_describe(hint))
    out: dict[Any, Any] = {}
    for key, item in items:
        try:
            k, v = _convert(key_hint, key), _convert(value_hint, item)
        except _Invalid:
            raise _Invalid(_describe(hint)) from None
        if k in out:
            raise _Invalid(_describe(hint) + f", each key once ({k} is repeated)")
        out[k] = v
    return out


def _convert_names(hint: Any, args: tuple[Any, ...], value: Any) -> tuple[Any, ...]:
    if isinstance(value, str):
        parts: Sequence[Any] = [p.strip() for p in value.split(",") if p.strip()]
        if not parts:
            raise _Invalid(_describe(hint))
    elif isinstance(value, Sequence) and not isinstance(value, bytes):
        parts = value
    else:
        raise _Invalid(_describe(hint))
    member = args[0] if args else str
    return tuple(_convert(member, p) for p in parts)
