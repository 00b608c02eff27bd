"""The input stem: a backbone plus the band selection, class set and input resolution it was built for.

:class:`LandCoverModel` takes either

* the native-resolution band groups (``{"10m": [B, 4, 120, 120], "20m": [B, 6, 60, 60]}``, raw values),
  which it normalises and resamples on the device with :class:`landzoo.transforms.InputTransform`
  (the paper's bicubic, after normalising), or
* one stacked tensor that is already the model input: normalised, in band-selection order, at
  ``input_size`` x ``input_size``. A stacked tensor of another size or channel count is refused
  (:class:`~landzoo.contract.ContractError`), never resized or fed silently.

It returns logits ``[B, len(classes)]``; :meth:`predict_proba` applies the sigmoid (19 independent
binary classifiers, as the reference's sigmoid head).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from landzoo import contract
from landzoo.transforms import InputTransform

__all__ = ["LandCoverModel", "resolve_classes"]


def resolve_classes(classes: str | Sequence[str]) -> tuple[str, ...]:
    """A class-set name (``"ben19"``) or a sequence of class names -> tuple of names (duplicates refused)."""
    names = contract.class_set(classes) if isinstance(classes, str) else tuple(classes)
    if not names:
        raise contract.ContractError("empty class list")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise contract.ContractError(f"class list repeats {', '.join(dup)}")
    return names


class LandCoverModel(nn.Module):
    """``backbone`` with its data contract: ``bands`` (channel order), ``input_size`` (side in px), ``classes``.

    ``native``/``stats``/``resample`` are passed to :class:`~landzoo.transforms.InputTransform` (``native=False``
    for datasets whose bands are all on one 10 m grid, such as SEN12MS and EuroSAT).
    """

    def __init__(
        self,
        backbone: nn.Module,
        bands: str | Sequence[str],
        input_size: int,
        classes: str | Sequence[str],
        *,
        name: str = "",
        native: bool = True,
        stats: Mapping[str, tuple[float, float]] | None = None,
        resample: str = "bicubic",
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.bands = contract.resolve_bands(bands)
        self.classes = resolve_classes(classes)
        self.class_set = classes if isinstance(classes, str) else None
        self.input_size = int(input_size)
        self.name = name
        self.transform = InputTransform(self.bands, self.input_size, stats=stats, native=native, mode=resample)
        out = getattr(backbone, "num_classes", None)
        if out is not None and out != len(self.classes):
            raise contract.ContractError(
                f"model {name or type(backbone).__name__} has {out} outputs but {len(self.classes)} classes were given"
            )
        in_chans = getattr(backbone, "in_chans", None)
        if in_chans is not None and in_chans != len(self.bands):
            raise contract.ContractError(
                f"model {name or type(backbone).__name__} takes {in_chans} channels but {len(self.bands)} bands were given"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def check_input(self, x: Tensor) -> None:
        """Refuse a stacked tensor that is not ``[B, len(bands), input_size, input_size]`` floating point."""
        expected = (len(self.bands), self.input_size, self.input_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != expected:
            raise contract.ContractError(
                f"model {self.name or type(self.backbone).__name__} expects a stacked input of shape "
                f"[B, {expected[0]}, {expected[1]}, {expected[2]}] ({','.join(self.bands)} at {self.input_size} px), "
                f"got {list(x.shape)}; pass the native band groups as a dict to have them resampled"
            )
        if not torch.is_floating_point(x):
            raise contract.ContractError(
                f"a stacked input must be normalised floats, got {x.dtype}; pass raw values as band groups (a dict)"
            )

    def prepare(self, x: Tensor | Mapping[str, Tensor]) -> Tensor:
        """The backbone's input: band groups normalised and resampled, or a checked stacked tensor."""
        if isinstance(x, Mapping):
            return self.transform(x)
        if not isinstance(x, Tensor):
            raise contract.ContractError(
                f"model input must be a tensor or a dict of band groups, not {type(x).__name__}"
            )
        self.check_input(x)
        return x

    def forward(self, x: Tensor | Mapping[str, Tensor]) -> Tensor:
        return self.backbone(self.prepare(x))

    @torch.no_grad()
    def predict_proba(self, x: Tensor | Mapping[str, Tensor]) -> Tensor:
        """Per-class probabilities (sigmoid of the logits), in ``classes`` order."""
        return torch.sigmoid(self(x))

    def contract(self) -> dict[str, Any]:
        """What a checkpoint must record to rebuild and feed this model."""
        return {
            "model": self.name,
            "bands": list(self.bands),
            "input_size": self.input_size,
            "classes": list(self.classes),
            "class_set": self.class_set,
        }

    def extra_repr(self) -> str:
        return f"name={self.name!r}, bands={','.join(self.bands)}, input_size={self.input_size}, classes={len(self.classes)}"
