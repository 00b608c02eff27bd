"""Batch-level, on-device transforms: normalise, resample band groups to one grid, augment.

Patches are stored and read at native resolution per band group (10 m at 120 px, 20 m at 60 px, ...),
so nothing is lost at encode time and the CPU loader only copies bytes. Everything else happens here,
on whole batches, on the device the model runs on:

* :class:`InputTransform` normalises each band group with the contract's statistics and resamples it
  to the model's input resolution, then concatenates the groups in band-selection order. The paper
  resizes *after* normalising; so do we.
* Resampling (:func:`resample`) defaults to ``"bicubic"``: the paper's ``tf.image.resize(method=BICUBIC)``
  reproduced exactly (TF2: half-pixel centres, Keys cubic with a = -0.5, taps outside the image dropped
  and the rest renormalised, no antialiasing even when downsampling 120 -> 60 px, the kernel sampled from
  TF's 1024-step table). It is applied as two small matrix products, which is exact for any size ratio and
  fast on a GPU. PyTorch's own ``F.interpolate(mode="bicubic")`` differs (a = -0.75, edge pixels
  repeated); it is available as ``"torch-bicubic"``, and ``"bilinear"``/``"nearest"``/``"area"`` as in torch.
* :func:`random_dihedral` draws one of the 8 flips/90-degree rotations per sample (the same for every
  band of a sample), unlike the reference code whose "augmentation" was one fixed flip for all patches.
  Flips and quarter turns commute with the symmetric resampling above, so augmenting before or after
  :class:`InputTransform` is the same; :func:`random_dihedral_groups` does it on native-resolution groups.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landzoo import contract

__all__ = [
    "RESAMPLE_MODES",
    "InputTransform",
    "RandomDihedral",
    "dihedral",
    "random_dihedral",
    "random_dihedral_groups",
    "resample",
    "tf_bicubic_matrix",
]

#: Resampling methods :func:`resample` knows.
RESAMPLE_MODES = ("bicubic", "torch-bicubic", "bilinear", "nearest", "area")

_TF_TABLE_SIZE = 1024  # TensorFlow's resize_bicubic_op.cc kTableSize
_KEYS_A = -0.5  # Keys (1981) cubic, what TF uses with half_pixel_centers=True


@functools.lru_cache(maxsize=64)
def _tf_bicubic_matrix_np(in_size: int, out_size: int) -> np.ndarray:
    # TF's coefficient table, float32 from float64 x, exactly as InitCoeffsTable(-0.5).
    x = np.arange(_TF_TABLE_SIZE + 1, dtype=np.float64) / _TF_TABLE_SIZE
    a = _KEYS_A
    near = (((a + 2) * x - (a + 3)) * x * x + 1).astype(np.float32)  # |t| in [0, 1]
    x1 = x + 1.0
    far = (((a * x1 - 5 * a) * x1 + 8 * a) * x1 - 4 * a).astype(np.float32)  # |t| in [1, 2]
    scale = np.float32(in_size) / np.float32(out_size)
    m = np.zeros((out_size, in_size), dtype=np.float32)
    for o in range(out_size):
        loc = (np.float32(o) + np.float32(0.5)) * scale - np.float32(0.5)  # HalfPixelScaler, float32
        base = int(np.floor(loc))
        offset = int(np.rint(np.float32(loc - np.float32(base)) * np.float32(_TF_TABLE_SIZE)))
        taps = (base - 1, base, base + 1, base + 2)
        weights = (far[offset], near[offset], near[_TF_TABLE_SIZE - offset], far[_TF_TABLE_SIZE - offset])
        kept = [(t, w) for t, w in zip(taps, weights, strict=True) if 0 <= t < in_size]
        total = np.float32(sum(w for _, w in kept))
        for t, w in kept:
            m[o, t] += w / total
    return m


def tf_bicubic_matrix(in_size: int, out_size: int, *, device: torch.device | str | None = None) -> Tensor:
    """``[out_size, in_size]`` matrix ``M`` with ``M @ column`` = TF2's bicubic resize of that column."""
    return torch.from_numpy(_tf_bicubic_matrix_np(int(in_size), int(out_size))).to(device)


@functools.lru_cache(maxsize=64)
def _device_matrix(in_size: int, out_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """:func:`tf_bicubic_matrix` kept on the device: copying it from host memory every batch would make each
    training step wait for the GPU (a blocking host-to-device copy). Made outside inference mode, so a matrix
    first built during an evaluation can still be used where autograd records."""
    with torch.inference_mode(False):
        return tf_bicubic_matrix(in_size, out_size, device=device).to(dtype)


def _export_matrix(in_size: int, out_size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return tf_bicubic_matrix(in_size, out_size, device=device).to(dtype)


def resample(x: Tensor, size: int, mode: str = "bicubic") -> Tensor:
    """Resample a ``[B, C, H, W]`` float batch to ``size x size`` (no-op when it already is)."""
    if mode not in RESAMPLE_MODES:
        raise ValueError(f"unknown resampling mode {mode!r}; choose from {', '.join(RESAMPLE_MODES)}")
    if x.shape[-2:] == (size, size):
        return x
    if mode == "bicubic":
        # torch.export (ONNX, .pt2) traces with fake tensors: build the matrices afresh (they become constants of
        # the graph) rather than leave fake tensors in the cache that later eager calls would be handed
        matrix = _export_matrix if torch.compiler.is_exporting() else _device_matrix
        h = matrix(x.shape[-2], size, x.device, x.dtype)
        w = h if x.shape[-1] == x.shape[-2] else matrix(x.shape[-1], size, x.device, x.dtype)
        return torch.matmul(torch.matmul(h, x), w.transpose(0, 1))
    if mode == "torch-bicubic":
        return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    align = None if mode in ("nearest", "area") else False
    return F.interpolate(x, size=(size, size), mode=mode, align_corners=align)


class InputTransform(nn.Module):
    """Native-resolution band groups -> one normalised ``[B, C, size, size]`` float tensor.

    ``bands`` fixes the channel order of the output (the model's contract); the groups given to
    :meth:`forward` must hold exactly those bands, group by group, as :func:`contract.band_groups` splits
    them. A group of the wrong band count or an unexpected group name is an error, never a reorder;
    :meth:`check_groups` compares band *names* with what a dataset delivers.
    """

    def __init__(
        self,
        bands: str | Sequence[str],
        size: int,
        *,
        stats: Mapping[str, tuple[float, float]] | None = None,
        native: bool = True,
        mode: str = "bicubic",
        footprint: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        if mode not in RESAMPLE_MODES:
            raise ValueError(f"unknown resampling mode {mode!r}; choose from {', '.join(RESAMPLE_MODES)}")
        self.bands = contract.resolve_bands(bands)
        self.size = int(size)
        self.mode = mode
        self.groups = contract.band_groups(self.bands, native=native)
        # side in px of each group over one patch: the contract's (BigEarthNet 1200 m) unless given; None = any
        # square size shared by all groups (bands resampled to one grid, whose patch size is the dataset's)
        self.footprint = {g: (footprint or {}).get(g, contract.patch_px(g, native=native)) for g in self.groups}
        if tuple(b for g in self.groups.values() for b in g) != self.bands:
            raise contract.ContractError(
                f"band selection {','.join(self.bands)} is not grouped by resolution; "
                f"order it as {','.join(b for g in self.groups.values() for b in g)}"
            )
        for name, names in self.groups.items():
            mean, std = contract.band_stats(names, stats if stats is not None else contract.BEN_BAND_STATS)
            self.register_buffer(f"mean_{name}", torch.from_numpy(mean).view(1, -1, 1, 1), persistent=False)
            self.register_buffer(f"std_{name}", torch.from_numpy(std).view(1, -1, 1, 1), persistent=False)

    def check_groups(self, groups: Mapping[str, Sequence[str]]) -> None:
        """Refuse a data source whose band groups (names, channel order) differ from this transform's."""
        got = {g: tuple(b) for g, b in groups.items()}
        if got != dict(self.groups):
            raise contract.ContractError(
                f"the data delivers band groups {got}, the model expects {dict(self.groups)}: "
                "open the data with the model's bands (selection is by name)"
            )

    def check_footprint(self, image: Mapping[str, Tensor]) -> None:
        """Refuse groups that do not cover one patch: each group at its native size, all groups the same area.

        A model classifies one patch (BigEarthNet: 1200 m, i.e. 10 m bands at 120 px, 20 m at 60 px). A larger
        image would be squeezed into one input and scored as one patch; groups of different footprints would be
        stacked over different ground. Both are refused; a scene is mapped window by window by ``landzoo map``.
        """
        sizes = {name: tuple(int(v) for v in image[name].shape[-2:]) for name in self.groups}
        want = self.footprint
        bad = [n for n, (h, w) in sizes.items() if h != w or (want[n] is not None and h != want[n])]
        if not bad and any(v is None for v in want.values()) and len(set(sizes.values())) > 1:
            bad = list(sizes)  # one shared grid: every group must have the same size
        if bad:
            got = ", ".join(f"{n} {h}x{w} px" for n, (h, w) in sizes.items())
            if all(v is not None for v in want.values()):
                exp = ", ".join(f"{n} {want[n]}x{want[n]} px" for n in self.groups)
                exp = f"one {contract.BEN_PATCH_METRES} m patch: {exp}"
            else:
                exp = "one square patch with every band group at the same size"
            raise contract.ContractError(
                f"input band groups {got} are not {exp}; to classify a larger image or scene use `landzoo map`"
            )

    def forward(self, image: Mapping[str, Tensor]) -> Tensor:
        if set(image) != set(self.groups):
            raise contract.ContractError(
                f"input has band groups {sorted(image)}, expected {sorted(self.groups)} for bands {','.join(self.bands)}"
            )
        for name, names in self.groups.items():
            x = image[name]
            if x.ndim != 4 or x.shape[1] != len(names):
                raise contract.ContractError(
                    f"band group {name!r} has shape {tuple(x.shape)}, expected [B, {len(names)}, H, W] ({','.join(names)})"
                )
        self.check_footprint(image)
        parts = [
            resample((image[n].float() - getattr(self, f"mean_{n}")) / getattr(self, f"std_{n}"), self.size, self.mode)
            for n in self.groups
        ]
        return torch.cat(parts, dim=1)

    def extra_repr(self) -> str:
        return f"bands={','.join(self.bands)}, size={self.size}, mode={self.mode}"


def dihedral(x: Tensor, k: int) -> Tensor:
    """Dihedral transform number ``k`` (0..7) of ``[..., H, W]``: ``k % 4`` quarter turns, mirrored first if ``k >= 4``."""
    if not 0 <= k < 8:
        raise ValueError(f"dihedral transform number must be 0..7, not {k}")
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _draw(n: int, generator: torch.Generator | None) -> Tensor:
    return torch.randint(0, 8, (n,), generator=generator, device=generator.device if generator is not None else "cpu")


#: Transform ``k`` of :func:`dihedral` as (transpose, then flip rows, then flip columns): three selections that
#: need no data-dependent shapes (``tests/store/test_transforms.py`` checks the table against :func:`dihedral`).
_DIHEDRAL_PARTS = torch.tensor(
    [[0, 0, 0], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=torch.bool
)


@functools.lru_cache(maxsize=8)
def _dihedral_table(device: torch.device) -> Tensor:
    """:data:`_DIHEDRAL_PARTS` on ``device``, copied once (for draws made on the device)."""
    return _DIHEDRAL_PARTS.to(device)


def _apply(x: Tensor, choice: Tensor) -> Tensor:
    """Each sample's transform, as three whole-batch selections: no host synchronisation (no ``nonzero``, no
    branch on the draws), so the step stays asynchronous on a GPU and capturable in a CUDA graph."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"dihedral augmentation needs square patches, got {tuple(x.shape[-2:])}")
    if choice.device.type == "cpu":  # drawn on the host: look up there, then a queued copy from pinned memory
        parts = _DIHEDRAL_PARTS[choice]
        parts = parts.pin_memory().to(x.device, non_blocking=True) if x.device.type == "cuda" else parts.to(x.device)
    else:
        parts = _dihedral_table(choice.device)[choice].to(x.device)
    parts = parts.view(-1, 3, *([1] * (x.dim() - 1)))
    # pure data movement: unsigned ints (uint16 straight from the store) go through their signed twin
    signed = _SIGNED_TWIN.get(x.dtype)
    out = x.view(signed) if signed is not None else x
    out = torch.where(parts[:, 0], out.transpose(-2, -1), out)
    out = torch.where(parts[:, 1], out.flip(-2), out)
    out = torch.where(parts[:, 2], out.flip(-1), out)
    return out.view(x.dtype) if signed is not None else out


_SIGNED_TWIN = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}


def random_dihedral(
    x: Tensor, generator: torch.Generator | None = None, *, return_choice: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Apply one of the 8 dihedral transforms (flips and 90-degree rotations) per sample of ``[B, C, H, W]``.

    The same transform goes to every channel of a sample, a different one (uniformly drawn) to each sample.
    With ``return_choice`` the drawn transform numbers (see :func:`dihedral`) come back too.
    """
    choice = _draw(x.shape[0], generator)
    out = _apply(x, choice)
    return (out, choice) if return_choice else out


def random_dihedral_groups(image: Mapping[str, Tensor], generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """:func:`random_dihedral` on native-resolution band groups: one draw per sample, shared by all its groups."""
    sizes = {t.shape[0] for t in image.values()}
    if len(sizes) != 1:
        raise ValueError(f"band groups disagree on the batch size: {sorted(sizes)}")
    choice = _draw(sizes.pop(), generator)
    return {g: _apply(t, choice) for g, t in image.items()}


class RandomDihedral(nn.Module):
    """Random flips/quarter turns per sample while training (identity in eval mode)."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        return random_dihedral(x, self.generator) if self.training else x  # type: ignore[return-value]
