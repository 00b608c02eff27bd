"""The engine's input pipeline, run on the device per batch: band groups -> normalised, sized, augmented tensor.

1. normalise each band with the run's statistics and resample every band group (TF-exact bicubic,
   :class:`landzoo.transforms.InputTransform`): to the model's input size (``resize``, the default), or to
   the patch's 10 m grid (``crop``);
2. ``crop`` only: cut a window of the model's input size at native 10 m, at a random position in training and
   centred otherwise; a patch smaller than the window is padded with zeros after normalisation (the means);
3. in training, the optional dihedral augmentation (one of the 8 flips / quarter turns per sample).

Steps 2 and 3 draw from one generator that the LightningModule seeds per optimiser step, so a resumed run
draws what an uninterrupted one draws. :class:`Resolution` is that policy as data (the transfer report cites
it); it lives here because it is how any model is fed, not something particular to transfer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from landzoo.training.config import ConfigError

if TYPE_CHECKING:  # torch is imported where a batch is cropped: `landzoo transfer --help` needs none of it
    import torch
    from torch import Tensor

__all__ = ["RESOLUTION_MODES", "Resolution"]

RESOLUTION_MODES: Final = ("resize", "crop")


@dataclass(frozen=True)
class Resolution:
    """Resize to the model's input, or crop/pad at native 10 m (see the module docstring)."""

    mode: str
    model_px: int  # the model's input size
    grid_px: int  # the patch's size on the 10 m grid

    def __post_init__(self) -> None:
        if self.mode not in RESOLUTION_MODES:
            raise ConfigError(f"unknown resolution mode {self.mode!r}; choose from {', '.join(RESOLUTION_MODES)}")

    @property
    def transform_px(self) -> int:
        """Size the band groups are resampled to before any crop."""
        return self.model_px if self.mode == "resize" else self.grid_px

    def describe(self) -> str:
        if self.mode == "resize":
            gsd = 10.0 * self.grid_px / self.model_px
            return f"resize {self.grid_px} px (10 m) -> {self.model_px} px ({gsd:.3g} m pixels)"
        if self.grid_px >= self.model_px:
            return f"crop {self.model_px} px windows at 10 m from {self.grid_px} px patches (random in training)"
        return f"pad {self.grid_px} px patches to {self.model_px} px at 10 m (zeros after normalisation)"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "model_px": self.model_px, "grid_px": self.grid_px}

    def apply(self, x: Tensor, *, train: bool, generator: torch.Generator | None = None) -> Tensor:
        """Crop or pad a normalised ``[B, C, grid, grid]`` batch to the model's size (no-op for ``resize``)."""
        import torch

        size = self.model_px
        if self.mode == "resize" or (x.shape[-1] == size and x.shape[-2] == size):
            return x
        h, w = x.shape[-2:]
        if h < size or w < size:
            ph, pw = max(0, size - h), max(0, size - w)
            x = torch.nn.functional.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
            h, w = x.shape[-2:]
        if h == size and w == size:
            return x
        if not train:
            top, left = (h - size) // 2, (w - size) // 2
            return x[..., top : top + size, left : left + size]
        n = x.shape[0]
        tops = torch.randint(0, h - size + 1, (n,), generator=generator).tolist()
        lefts = torch.randint(0, w - size + 1, (n,), generator=generator).tolist()
        return torch.stack(
            [x[i, :, t : t + size, s : s + size] for i, (t, s) in enumerate(zip(tops, lefts, strict=True))]
        )
