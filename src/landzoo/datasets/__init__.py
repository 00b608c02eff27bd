"""Readers of the raw datasets, by name. See :mod:`landzoo.datasets.base` for the sample dict."""

from __future__ import annotations

import importlib
import inspect
import os
from typing import Any

from landzoo.datasets.base import (
    SPLITS,
    BadPatch,
    DatasetError,
    PatchError,
    PatchRecord,
    Reader,
    Sample,
)

#: Dataset name -> "module:class" of its reader (imported on use, so the CLI starts fast).
READERS: dict[str, str] = {
    "bigearthnet-v1": "landzoo.datasets.bigearthnet_v1:BigEarthNetV1",
    "bigearthnet-v2": "landzoo.datasets.bigearthnet_v2:BigEarthNetV2",
    "sen12ms": "landzoo.datasets.sen12ms:SEN12MS",
    "eurosat": "landzoo.datasets.eurosat:EuroSAT",
}


def reader_class(name: str) -> type[Reader]:
    """The reader class of a dataset name, with a clear error for an unknown name."""
    try:
        module, cls = READERS[name].split(":")
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(READERS)}") from None
    return getattr(importlib.import_module(module), cls)


def open_dataset(name: str, root: str | os.PathLike, **kwargs: Any) -> Reader:
    """Open a raw dataset folder with the reader for ``name`` (options as in :class:`Reader`).

    An option the reader does not take is a :class:`DatasetError` listing the ones it does (options come
    from the command line as ``-o KEY=VALUE``, so a typo must be one clear line, not a ``TypeError``).
    """
    cls = reader_class(name)
    accepted = {
        p.name
        for c in cls.__mro__
        if "__init__" in vars(c)
        for p in inspect.signature(c.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise DatasetError(f"{name} reader has no option {', '.join(unknown)} (options: {', '.join(sorted(accepted))})")
    return cls(root, **kwargs)


__all__ = [
    "READERS",
    "SPLITS",
    "BadPatch",
    "DatasetError",
    "PatchError",
    "PatchRecord",
    "Reader",
    "Sample",
    "open_dataset",
    "reader_class",
]
