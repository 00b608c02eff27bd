"""Compound scaling (EfficientNet-style) of the paper's WRN and custom EfficientNet, and the coefficient grid.

A variant is fixed by (alpha, beta, gamma, phi): depth multiplier ``A = alpha**phi``, width multiplier
``B = beta**phi``, resolution multiplier ``G = gamma**phi``. The rounding rules are the reference code's
(``models.WideResNet`` / ``models.EfficientNet``), computed with the same float expressions so that the
same coefficients give the same network:

* **resolution** ``R = int(ceil(60 * G / 10)) * 10``: the base is 60 px, rounded *up* to a multiple of 10;
* **WRN depth** ``d = 10 * A`` and **blocks per group** ``N = int((d - 4) // 6 * A)``: the reference applies
  ``A`` twice (once in ``d``, once as a factor), so depth grows faster than ``alpha**phi``. That quirk
  defines the released B-variants and is the default (``blocks_rule="paper"``); ``blocks_rule="single"``
  applies ``A`` once, as the WRN-d-k relation intends (``N = int((d - 4) // 6)``);
* **WRN widths** ``make_divisible(16k | 32k | 64k, 4)`` with ``k = 2 * B`` (round to the nearest multiple of
  4, never more than 10 % down);
* **EfficientNet** filters ``round_filters(f, B)`` (nearest multiple of 8, never more than 10 % down) and
  repeats ``ceil(A * n)`` on the B0 layout.

Coefficients behind the registered ``wrn_eca_b0..b7`` and ``efficientnet_eca_b0..b7`` (see
:data:`COEFFICIENT_PROVENANCE`): EfficientNet's published alpha=1.2, beta=1.1, gamma=1.15 with phi = 0..7.
The paper's own grid-searched values are unpublished; the search (:func:`search`, ``landzoo scale search``)
has not been run on the real BigEarthNet, which this project's machines do not hold.

FLOPs are *measured* on the built model with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions
and matrix products; element-wise operations are not counted) and reported as MACs = FLOPs / 2.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from landzoo.errors import LandzooError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

__all__ = [
    "BASE_RESOLUTION",
    "COEFFICIENT_PROVENANCE",
    "EFFICIENTNET_B0_STAGES",
    "EFFICIENTNET_COEFFICIENTS",
    "REFERENCE_HEAD_COEFFICIENTS",
    "Coefficients",
    "EfficientNetDims",
    "ScalingError",
    "TrainFn",
    "WRNDims",
    "count_macs",
    "count_params",
    "efficientnet_dims",
    "grid_candidates",
    "grid_table",
    "make_divisible",
    "round_filters",
    "round_repeats",
    "scaled_resolution",
    "search",
    "variant_coefficients",
    "wrn_dims",
]


class ScalingError(LandzooError, ValueError):
    """Coefficients or grid settings that do not describe a network."""


#: Input side of every unscaled (phi = 0 or alpha = beta = gamma = 1) WRN / custom EfficientNet.
BASE_RESOLUTION = 60
#: WRN-10-2: base depth and widen factor, and the per-group base widths that k multiplies.
WRN_BASE_DEPTH = 10
WRN_BASE_WIDEN = 2
WRN_GROUP_BASES = (16, 32, 64)
#: WRN width rounding divisor (reference ``_make_divisible(..., divisor=4)``).
WRN_WIDTH_DIVISOR = 4
#: EfficientNet filter rounding divisor (reference ``round_filters``: ``depth_divisor = 8``).
EFFICIENTNET_WIDTH_DIVISOR = 8
BLOCKS_RULES = ("paper", "single")


@dataclass(frozen=True)
class Coefficients:
    """Compound-scaling coefficients; ``phi`` is the compound exponent (the "B" number of a variant)."""

    alpha: float
    beta: float
    gamma: float
    phi: float = 1.0

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ScalingError(f"{name} must be a positive number, not {v!r}")
        if not (math.isfinite(self.phi) and self.phi >= 0):
            raise ScalingError(f"phi must be a non-negative number, not {self.phi!r}")

    @property
    def depth(self) -> float:
        """Depth multiplier ``alpha ** phi``."""
        return self.alpha**self.phi

    @property
    def width(self) -> float:
        """Width multiplier ``beta ** phi``."""
        return self.beta**self.phi

    @property
    def resolution(self) -> float:
        """Resolution multiplier ``gamma ** phi``."""
        return self.gamma**self.phi

    @property
    def flops_factor(self) -> float:
        """``alpha * beta^2 * gamma^2``: EfficientNet's FLOPs growth per unit of phi (its constraint: about 2)."""
        return self.alpha * self.beta**2 * self.gamma**2

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


#: EfficientNet's grid-searched coefficients (Tan & Le 2019, ImageNet, MnasNet-like B0): alpha*beta^2*gamma^2 = 1.92.
EFFICIENTNET_COEFFICIENTS = Coefficients(alpha=1.2, beta=1.1, gamma=1.15)
#: The only coefficients in the reference repository (HEAD ``configs/base.json``): gives WRN-10-3.6 at 90 px.
REFERENCE_HEAD_COEFFICIENTS = Coefficients(alpha=1.4, beta=1.8, gamma=1.4, phi=1.0)

COEFFICIENT_PROVENANCE = (
    "wrn_eca_b0..b7 and efficientnet_eca_b0..b7 use alpha=1.2, beta=1.1, gamma=1.15 (EfficientNet's coefficients, "
    "Tan & Le 2019, grid-searched on ImageNet at phi=1 under alpha*beta^2*gamma^2 ~ 2) with phi = 0..7 for B0..B7. "
    "The paper's own per-variant coefficients are not published (the reference repository only holds "
    "alpha=1.4, beta=1.8, gamma=1.4, phi=1, which violates the constraint: product 8.9). `landzoo scale search "
    "--data STORE` runs the grid search; it has not been run on the real BigEarthNet (this project's machines do "
    "not hold it; a run on synthetic data shows the procedure only), so these are a documented stand-in, not the "
    "paper's values."
)


def variant_coefficients(phi: int, base: Coefficients = EFFICIENTNET_COEFFICIENTS) -> Coefficients:
    """Coefficients of variant B``phi`` (``phi`` = 0..7 for the registered families)."""
    return Coefficients(base.alpha, base.beta, base.gamma, float(phi))


# ---- rounding rules -------------------------------------------------------------------------------
def scaled_resolution(resolution_multiplier: float, base: int = BASE_RESOLUTION) -> int:
    """``int(ceil(base * G / 10)) * 10`` (the reference's expression, float rounding included)."""
    return math.ceil(base * resolution_multiplier / 10.0) * 10


def make_divisible(value: float, divisor: int = WRN_WIDTH_DIVISOR, min_value: int | None = None) -> int:
    """Nearest multiple of ``divisor`` (at least ``min_value``), bumped up if rounding lost more than 10 %."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


def round_filters(filters: int, width_multiplier: float, divisor: int = EFFICIENTNET_WIDTH_DIVISOR) -> int:
    """EfficientNet's filter rounding: ``make_divisible(filters * B, 8)``."""
    return make_divisible(filters * width_multiplier, divisor)


def round_repeats(repeats: int, depth_multiplier: float) -> int:
    """EfficientNet's repeat rounding: ``ceil(A * repeats)`` (``repeats`` unchanged for a zero multiplier)."""
    if not depth_multiplier:
        return repeats
    return math.ceil(depth_multiplier * repeats)


# ---- the WRN family ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WRNDims:
    """A scaled WRN: what the coefficients give after rounding."""

    depth: float  # 10 * A (the reference's "depth" argument; a float)
    widen: float  # k = 2 * B
    blocks_per_group: int  # N: one expanding block + (N - 1) pre-activation blocks per group
    widths: tuple[int, int, int]
    resolution: int

    @property
    def conv_layers(self) -> int:
        """What the reference prints as WRN-<this>-k: 4 + 6 * N."""
        return 4 + 6 * self.blocks_per_group

    @property
    def label(self) -> str:
        """``WRN-<conv layers>-<int(k)>``, exactly as the reference prints it."""
        return f"WRN-{self.conv_layers}-{int(self.widen)}"


def wrn_dims(
    depth_multiplier: float = 1.0,
    width_multiplier: float = 1.0,
    resolution_multiplier: float = 1.0,
    *,
    blocks_rule: str = "paper",
) -> WRNDims:
    """WRN dimensions for multipliers (A, B, G) = (alpha^phi, beta^phi, gamma^phi); see the module docstring."""
    if blocks_rule not in BLOCKS_RULES:
        raise ScalingError(f"blocks_rule must be one of {', '.join(BLOCKS_RULES)}, not {blocks_rule!r}")
    if depth_multiplier < 1 or width_multiplier <= 0 or resolution_multiplier <= 0:
        raise ScalingError(
            f"WRN multipliers must be depth >= 1, width > 0, resolution > 0 "
            f"(got {depth_multiplier}, {width_multiplier}, {resolution_multiplier})"
        )
    depth = WRN_BASE_DEPTH * depth_multiplier
    widen = WRN_BASE_WIDEN * width_multiplier
    # The reference's float expression: (depth - 4) // 6 is a float floor, then times A again ("paper").
    n = int((depth - 4) // 6 * (depth_multiplier if blocks_rule == "paper" else 1.0))
    widths = tuple(make_divisible(b * widen, WRN_WIDTH_DIVISOR) for b in WRN_GROUP_BASES)
    return WRNDims(depth, widen, n, widths, scaled_resolution(resolution_multiplier))  # type: ignore[arg-type]


# ---- the custom EfficientNet family ------------------------------------------------------------------
#: EfficientNet-B0 layout of the reference: (filters, kernel, stride, expansion t, repeats) per stage.
EFFICIENTNET_B0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (16, 3, 1, 1, 1),
    (24, 3, 2, 6, 2),
    (40, 5, 2, 6, 2),
    (80, 3, 2, 6, 3),
    (112, 5, 1, 6, 3),
    (192, 5, 2, 6, 4),
    (320, 3, 1, 6, 1),
)
EFFICIENTNET_STEM = 32
EFFICIENTNET_HEAD = 1280


@dataclass(frozen=True)
class EfficientNetDims:
    """A scaled custom EfficientNet: stem width, per-stage (filters, kernel, stride, t, repeats), head width, R."""

    stem: int
    stages: tuple[tuple[int, int, int, int, int], ...]
    head: int
    resolution: int


def efficientnet_dims(
    depth_multiplier: float = 1.0, width_multiplier: float = 1.0, resolution_multiplier: float = 1.0
) -> EfficientNetDims:
    """Custom-EfficientNet dimensions for multipliers (A, B, G), with the reference's rounding."""
    if depth_multiplier <= 0 or width_multiplier <= 0 or resolution_multiplier <= 0:
        raise ScalingError("EfficientNet multipliers must be positive")
    stages = tuple(
        (round_filters(f, width_multiplier), k, s, t, round_repeats(n, depth_multiplier))
        for f, k, s, t, n in EFFICIENTNET_B0_STAGES
    )
    return EfficientNetDims(
        round_filters(EFFICIENTNET_STEM, width_multiplier),
        stages,
        round_filters(EFFICIENTNET_HEAD, width_multiplier),
        scaled_resolution(resolution_multiplier),
    )


# ---- measuring ----------------------------------------------------------------------------------------
def count_params(model: nn.Module) -> int:
    """Trainable parameters (BatchNorm's affine pair included, running statistics not: as Keras counts)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def count_macs(model: nn.Module, input_shape: Sequence[int], *, device: Any = None) -> int:
    """Multiply-accumulates of one forward pass at ``input_shape`` (``[B, C, H, W]``), measured by FlopCounterMode."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = device if device is not None else (param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(*input_shape, device=device)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops()) // 2


# ---- the grid and the search --------------------------------------------------------------------------
def grid_candidates(
    *,
    step: float = 0.1,
    low: float = 1.0,
    high: float = 2.0,
    target: float = 2.0,
    tolerance: float = 0.1,
    phi: float = 1.0,
) -> list[Coefficients]:
    """All (alpha, beta, gamma) on a ``step`` grid in [low, high] with ``|alpha*beta^2*gamma^2 - target| <= tolerance``.

    EfficientNet's procedure: fix phi = 1 and search the coefficients under the FLOPs constraint. Values are
    rounded to 4 decimals so that the grid points are exact decimal numbers. Sorted by alpha, beta, gamma.
    """
    if step <= 0 or low < 1 or high < low or tolerance < 0:
        raise ScalingError(
            f"bad grid: step={step}, low={low}, high={high}, tolerance={tolerance} (need step > 0, 1 <= low <= high)"
        )
    n = math.floor((high - low) / step + 1e-9) + 1
    values = [round(low + i * step, 4) for i in range(n)]
    out = [
        Coefficients(a, b, g, phi)
        for a in values
        for b in values
        for g in values
        if abs(a * b * b * g * g - target) <= tolerance + 1e-12
    ]
    if not out:
        raise ScalingError(
            f"no (alpha, beta, gamma) on a {step} grid in [{low}, {high}] has alpha*beta^2*gamma^2 within "
            f"{tolerance} of {target}; widen the tolerance or the range"
        )
    return out


FAMILIES = ("wrn_eca", "efficientnet_eca")


def grid_table(
    candidates: Iterable[Coefficients] | None = None,
    *,
    family: str = "wrn_eca",
    in_chans: int = 10,
    num_classes: int = 19,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per candidate: coefficients, rounded dimensions, measured MACs and trainable parameters."""
    import torch
    from tqdm import tqdm

    from landzoo.models import build_scaled

    if family not in FAMILIES:
        raise ScalingError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    cands = list(candidates) if candidates is not None else grid_candidates()
    rows = []
    for c in tqdm(cands, desc=f"measuring {family} candidates", unit="model", disable=not progress):
        with torch.device("meta"):  # shapes only: counting needs no memory and no initialisation
            model, size = build_scaled(family, c, in_chans=in_chans, num_classes=num_classes)
        row: dict[str, Any] = {**c.as_dict(), "product": round(c.flops_factor, 4)}
        if family == "wrn_eca":
            d = wrn_dims(c.depth, c.width, c.resolution)
            row.update(blocks_per_group=d.blocks_per_group, widths="/".join(map(str, d.widths)), label=d.label)
        else:
            d2 = efficientnet_dims(c.depth, c.width, c.resolution)
            row.update(
                repeats="/".join(str(s[4]) for s in d2.stages), widths=f"{d2.stem}..{d2.head}", label="EfficientNet"
            )
        row.update(
            resolution=size,
            params=count_params(model),
            macs=count_macs(model, (1, in_chans, size, size), device="meta"),
        )
        rows.append(row)
    return rows


#: A training function for the search: takes a candidate's config dict, returns its validation score.
TrainFn = Callable[[Mapping[str, Any]], float]


def search(
    train_fn: TrainFn,
    candidates: Iterable[Coefficients] | None = None,
    *,
    family: str = "wrn_eca",
    in_chans: int = 10,
    num_classes: int = 19,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """EfficientNet's search: train every candidate briefly with ``train_fn`` and rank by validation score.

    ``train_fn`` receives ``{"family", "alpha", "beta", "gamma", "phi", "input_size", "params", "macs", ...}``
    (a :func:`grid_table` row) and returns a score where higher is better (e.g. validation micro-F1). The
    rows come back best first, each with ``"score"`` added. The training engine provides ``train_fn``.
    """
    rows = grid_table(candidates, family=family, in_chans=in_chans, num_classes=num_classes, progress=progress)
    for row in rows:
        score = float(train_fn({"family": family, "input_size": row["resolution"], **row}))
        if not math.isfinite(score):
            raise ScalingError(f"train_fn returned a non-finite score {score} for {row}")
        row["score"] = score
    return sorted(rows, key=lambda r: -r["score"])
