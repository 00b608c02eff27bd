"""Compound scaling: rounding rules, the reference's own configuration, monotonicity in phi, the grid, MACs."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from landzoo import scaling
from landzoo.models import build_backbone, build_scaled, count_params
from landzoo.scaling import Coefficients, ScalingError


def test_base_is_wrn_10_2_at_60px() -> None:
    d = scaling.wrn_dims()
    assert (d.blocks_per_group, d.widths, d.resolution, d.label) == (1, (32, 64, 128), 60, "WRN-10-2")


def test_reference_head_config() -> None:
    # paper.md 3.2: alpha=1.4, beta=1.8, gamma=1.4, phi=1 gives R=90, N=1, k=3.6, widths 56/116/232, "WRN-10-3"
    c = scaling.REFERENCE_HEAD_COEFFICIENTS
    d = scaling.wrn_dims(c.depth, c.width, c.resolution)
    assert (d.resolution, d.blocks_per_group, d.widths, d.label) == (90, 1, (56, 116, 232), "WRN-10-3")
    assert d.widen == pytest.approx(3.6)
    assert c.flops_factor == pytest.approx(1.4 * 1.8**2 * 1.4**2)  # about 8.9: violates the ~2 constraint


@pytest.mark.parametrize(
    ("value", "divisor", "expected"),
    [(57.6, 4, 56), (115.2, 4, 116), (230.4, 4, 232), (35.2, 8, 32), (3.0, 4, 4), (10.0, 8, 16)],
)
def test_make_divisible(value: float, divisor: int, expected: int) -> None:
    assert scaling.make_divisible(value, divisor) == expected


def test_double_alpha_quirk() -> None:
    # A = 1.2^3 = 1.728: depth 17.28, (17.28 - 4) // 6 = 2, times A again = 3.456 -> 3 blocks (2 with A once)
    a = 1.2**3
    assert scaling.wrn_dims(a).blocks_per_group == 3
    assert scaling.wrn_dims(a, blocks_rule="single").blocks_per_group == 2
    with pytest.raises(ScalingError, match="blocks_rule"):
        scaling.wrn_dims(a, blocks_rule="twice")


def test_resolution_rounding() -> None:
    assert [scaling.scaled_resolution(1.15**phi) for phi in range(8)] == [60, 70, 80, 100, 110, 130, 140, 160]
    assert scaling.scaled_resolution(1.0) == 60


@pytest.mark.parametrize("family", ["wrn_eca", "efficientnet_eca"])
def test_variants_are_monotone_in_phi(family: str) -> None:
    dims, params = [], []
    for phi in range(8):
        c = scaling.variant_coefficients(phi)
        with torch.device("meta"):
            model, size = build_scaled(family, c)
        params.append(count_params(model))
        if family == "wrn_eca":
            d = scaling.wrn_dims(c.depth, c.width, c.resolution)
            dims.append((d.blocks_per_group, *d.widths, d.resolution))
        else:
            e = scaling.efficientnet_dims(c.depth, c.width, c.resolution)
            dims.append((sum(s[4] for s in e.stages), e.stem, e.head, e.resolution))
        assert size == scaling.scaled_resolution(c.resolution)
    for before, after in itertools.pairwise(dims):
        assert all(b <= a for b, a in zip(before, after, strict=True))
        assert after[-1] > before[-1]  # resolution strictly grows
    assert all(b < a for b, a in itertools.pairwise(params))


def test_registered_variant_equals_build_scaled() -> None:
    with torch.device("meta"):
        reg, size = build_backbone("wrn_eca_b4")
        scaled, size2 = build_scaled("wrn_eca", scaling.variant_coefficients(4))
    assert count_params(reg) == count_params(scaled) and size == size2 == 110


def test_grid_candidates_respect_the_constraint() -> None:
    cands = scaling.grid_candidates(step=0.05, tolerance=0.1)
    assert cands and all(min(c.alpha, c.beta, c.gamma) >= 1 for c in cands)
    assert all(abs(c.alpha * c.beta**2 * c.gamma**2 - 2) <= 0.1 + 1e-9 for c in cands)
    assert (1.2, 1.1, 1.15) in {(c.alpha, c.beta, c.gamma) for c in cands}  # EfficientNet's own choice
    # brute force over the same grid, independently
    grid = [round(1 + 0.05 * i, 2) for i in range(21)]
    brute = {(a, b, g) for a in grid for b in grid for g in grid if abs(a * b * b * g * g - 2) <= 0.1 + 1e-9}
    assert {(c.alpha, c.beta, c.gamma) for c in cands} == brute
    with pytest.raises(ScalingError):
        scaling.grid_candidates(step=0.1, tolerance=0.0, target=1.234567)
    with pytest.raises(ScalingError, match="positive"):
        Coefficients(0.0, 1.0, 1.0)


def _conv_linear_macs(model: nn.Module, x: torch.Tensor) -> int:
    """MACs of convolutions and linear layers from their output shapes (independent of FlopCounterMode)."""
    total = 0

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * m.in_channels // m.groups
            total += out.numel() * k
        elif isinstance(m, nn.Conv1d):
            total += out.numel() * m.kernel_size[0] * m.in_channels // m.groups
        elif isinstance(m, nn.Linear):
            total += out.numel() * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model.eval()(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize("name", ["wrn10_2_eca", "resnet50", "mixer_p12_120"])
def test_measured_macs_match_layer_arithmetic(name: str) -> None:
    model, size = build_backbone(name)
    x = torch.zeros(1, 10, size, size)
    assert scaling.count_macs(model, x.shape) == _conv_linear_macs(model, x)


def test_wrn_base_macs_by_hand() -> None:
    model, _ = build_backbone("wrn10_2")
    s1, s2, s3 = 60 * 60, 30 * 30, 15 * 15
    expected = (
        s1 * 16 * 10 * 9  # stem
        + s1 * (32 * 16 * 9 + 32 * 32 * 9 + 32 * 16)  # group 1 (stride 1)
        + s2 * (64 * 32 * 9 + 64 * 64 * 9 + 64 * 32)  # group 2
        + s3 * (128 * 64 * 9 + 128 * 128 * 9 + 128 * 64)  # group 3
        + 128 * 19  # head
    )
    assert scaling.count_macs(model, (1, 10, 60, 60)) == expected


def test_grid_table_and_search_with_a_plugged_train_fn() -> None:
    cands = [Coefficients(1.0, 1.0, 1.0), Coefficients(1.2, 1.1, 1.15), Coefficients(1.4, 1.0, 1.2)]
    seen = []

    def train_fn(cfg: dict) -> float:
        seen.append(cfg)
        return cfg["alpha"] - cfg["gamma"]  # any deterministic score

    rows = scaling.search(train_fn, cands, progress=False)
    assert [r["score"] for r in rows] == sorted((c.alpha - c.gamma for c in cands), reverse=True)
    assert {c["input_size"] for c in seen} == {60, 70, 80}
    assert all(c["params"] > 0 and c["macs"] > 0 and c["family"] == "wrn_eca" for c in seen)
    base = next(r for r in rows if r["alpha"] == 1.0)
    assert base["params"] == 305_889 and base["label"] == "WRN-10-2"

    def bad(cfg: dict) -> float:
        return float("nan")

    with pytest.raises(ScalingError, match="non-finite"):
        scaling.search(bad, cands[:1], progress=False)


def test_provenance_is_written_down() -> None:
    text = scaling.COEFFICIENT_PROVENANCE
    assert "1.2" in text and "1.1" in text and "1.15" in text and "not been run" in text
