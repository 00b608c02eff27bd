"""The encoded store: raw datasets converted once into sharded, checksummed, memory-mappable arrays.

* :func:`encode` (``landzoo encode``): raw dataset -> store, parallel and resumable;
* :func:`verify_store` (``landzoo verify``), :func:`store_info` (``landzoo info``);
* :class:`StoreDataset` / :class:`StoreDataModule`: batches of native-resolution tensors at memory speed.

Layout and the measurements behind it: :mod:`landzoo.store.format` and docs/store.md.
Imports are lazy so that ``import landzoo.store`` does not pull in torch or Lightning.
"""

from __future__ import annotations

from landzoo._lazy import lazy_exports

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

__all__, __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
