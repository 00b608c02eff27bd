"""The encoded store: raw datasets converted once into sharded, checksummed, memory-mappable arrays.

* :func:`encode` (``landzoo encode``): raw dataset -> store, parallel and resumable;
* :func:`verify_store` (``landzoo verify``), :func:`store_info` (``landzoo info``);
* :class:`StoreDataset` / :class:`StoreDataModule`: batches of native-resolution tensors at memory speed.

Layout and the measurements behind it: :mod:`landzoo.store.format` and docs/store.md.
Imports are lazy so that ``import landzoo.store`` does not pull in torch or Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "encode": "landzoo.store.encode",
    "encode_reader": "landzoo.store.encode",
    "EncodeResult": "landzoo.store.encode",
    "verify_store": "landzoo.store.verify",
    "VerifyResult": "landzoo.store.verify",
    "store_info": "landzoo.store.info",
    "format_info": "landzoo.store.info",
    "Store": "landzoo.store.reader",
    "StoreDataset": "landzoo.store.reader",
    "StoreBatchSampler": "landzoo.store.reader",
    "batch_plan": "landzoo.store.reader",
    "StoreDataModule": "landzoo.store.datamodule",
    "StoreError": "landzoo.store.format",
    "DamagedRecordError": "landzoo.store.format",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'landzoo.store' has no attribute {name!r}")
