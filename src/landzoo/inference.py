"""Using a trained model from Python: :func:`load_model` gives the model, its data contract and its transform.

It reads every form a landzoo model is stored in: a checkpoint file (``x.safetensors`` + ``x.json``), a
checkpoint or training-run folder (``model.safetensors`` + ``landzoo.json``/``model.json``) and a
``landzoo export`` folder. The weights are checked against the sidecar's SHA-256 and the network is rebuilt from
the architecture name with the contract's bands and classes, so nothing about the input is guessed.

``loaded.model(x)`` takes either the raw band groups at native resolution (``{"10m": [B, 4, 120, 120], "20m":
[B, 6, 60, 60]}``, uint16 or float) or a stacked tensor already prepared by ``loaded.transform`` (normalised,
resampled to the input size, bands in channel order); it returns logits, ``predict_proba`` probabilities.
docs/api.md has runnable examples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["LoadedModel", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    """A trained model with what it needs to be used correctly.

    ``model``: the :class:`~landzoo.models.LandCoverModel` (eval mode). ``contract``: its
    :class:`~landzoo.checkpoint.DataContract` (band names in channel order, classes in output order, per-band
    normalisation, input size, band grouping). ``meta``: the whole sidecar (architecture, config, metrics,
    provenance). ``transform``: band groups -> the network's stacked input.
    """

    model: Any
    contract: Any
    meta: Any

    @property
    def transform(self) -> Any:
        """:class:`~landzoo.transforms.InputTransform`: raw band groups -> normalised ``[B, C, S, S]`` input."""
        return self.model.transform

    @property
    def network(self) -> Any:
        """The bare network (timm's ``create_model`` builds the same one): stacked input -> logits."""
        return self.model.backbone

    @property
    def bands(self) -> tuple[str, ...]:
        return self.contract.bands

    @property
    def classes(self) -> tuple[str, ...]:
        return self.contract.classes


def load_model(path: str | os.PathLike, *, device: Any = "cpu") -> LoadedModel:
    """Load the model stored at ``path`` (see the module docstring) onto ``device``, in eval mode."""
    from landzoo.checkpoint import build_model_from_checkpoint

    model, meta = build_model_from_checkpoint(path)
    model.eval().to(device)
    return LoadedModel(model=model, contract=meta.contract, meta=meta)
