"""Readers of the raw datasets, by name. See :mod:`landzoo.datasets.base` for the sample dict."""

from __future__ import annotations

import importlib
import os
from typing import Any

from landzoo.datasets.base import (
    SPLITS,
    BadPatch,
    PatchRecord,
    Reader,
    Sample,
)
from landzoo.datasets.errors import DatasetError, PatchError

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
    """Open a raw dataset folder with the reader for ``name``.

    ``kwargs`` are the arguments every reader takes (``bands``, ``classes``, ``splits``, ``on_bad``,
    ``missing``, ``transforms``; see :class:`Reader`) and the reader's own options (the fields of its
    ``Options`` dataclass), as Python values or as command-line strings: each is converted by its declared
    type. An option the reader does not have is one :class:`DatasetError` line listing the ones it has.
    """
    return reader_class(name)(root, **kwargs)


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
