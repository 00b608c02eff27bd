"""Band-aware first-layer adaptation: kernels kept bit-exactly by name, dropped, added by the documented rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from landzoo import contract
from landzoo.transfer.adapt import (
    AdaptError,
    adapt_input_weight,
    find_head,
    find_input_layer,
    nearest_band,
    transfer_weights,
)

PAPER10 = contract.BAND_SELECTIONS["s2_10m_20m"]


def _weight(out: int, bands: int, k: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(out, bands, k, k, generator=torch.Generator().manual_seed(seed))


def test_kept_bands_are_bit_exact_and_reordered_by_name() -> None:
    w = _weight(8, len(PAPER10))
    target = ("B8A", "B02", "B03", "B04", "B09", "B01")  # EuroSAT-like order, two bands the checkpoint lacks
    new, rep = adapt_input_weight(w, PAPER10, target)
    assert new.shape == (8, 6, 3, 3)
    for j, b in enumerate(target[:4]):
        assert torch.equal(new[:, j], w[:, PAPER10.index(b)]), b
    assert rep.kept == ("B8A", "B02", "B03", "B04")
    assert set(rep.dropped) == {"B05", "B06", "B07", "B08", "B11", "B12"}
    assert rep.added == ("B09", "B01")
    # the rule per band, with the spectrally nearest source computed here from the wavelengths
    assert rep.rule_of("B09").source == "B8A"  # 945.1 nm: B8A (864.7) is nearer than B08 (832.8)
    assert rep.rule_of("B01").source == "B02"
    w64 = w.double()
    e_dropped = sum(float(w64[:, PAPER10.index(b)].pow(2).sum()) for b in rep.dropped)
    e_src = float(w64[:, PAPER10.index("B8A")].pow(2).sum() + w64[:, PAPER10.index("B02")].pow(2).sum())
    alpha = min(1.0, math.sqrt(e_dropped / e_src))
    assert rep.alpha == pytest.approx(alpha)
    assert torch.allclose(new[:, 4], w[:, PAPER10.index("B8A")] * alpha)
    assert torch.allclose(new[:, 5], w[:, PAPER10.index("B02")] * alpha)
    d = rep.to_dict()
    assert d["kept"] == ["B8A", "B02", "B03", "B04"] and d["bands"][4]["rule"] == "nearest"
    assert "| B09 | nearest | B8A |" in rep.to_markdown()


def test_swapped_band_is_an_exact_substitution() -> None:
    """B8A dropped, B09 added: B09 takes B8A's kernel unscaled, so identical inputs give identical outputs."""
    src = ("B02", "B03", "B04", "B8A")
    tgt = ("B02", "B03", "B04", "B09")
    w = _weight(4, 4, seed=1)
    new, rep = adapt_input_weight(w, src, tgt)
    assert rep.alpha == 1.0 and rep.rule_of("B09").source == "B8A"
    x = torch.randn(2, 4, 9, 9, generator=torch.Generator().manual_seed(2))
    assert torch.equal(F.conv2d(x, new), F.conv2d(x, w))


def test_pure_addition_preserves_the_activation_with_zero_kernels() -> None:
    w = _weight(6, len(PAPER10), seed=3)
    target = contract.BAND_SELECTIONS["s2_all"]  # the paper's 10 then B01, B09
    new, rep = adapt_input_weight(w, PAPER10, target)
    assert rep.alpha == 0.0 and rep.dropped == ()
    assert [rep.rule_of(b).rule for b in ("B01", "B09")] == ["zero", "zero"]
    assert rep.rule_of("B09").source == "B8A"  # recorded even though its scale is 0
    x = torch.randn(2, 12, 8, 8, generator=torch.Generator().manual_seed(4))
    assert torch.equal(F.conv2d(x, new), F.conv2d(x[:, :10], w))


def test_energy_is_conserved_when_dropped_kernels_are_shared() -> None:
    src = ("B02", "B03", "B04", "B08")
    tgt = ("B02", "B03", "B04", "B8A", "B07")  # both new bands are nearest to the dropped B08
    w = _weight(5, 4, seed=5)
    new, rep = adapt_input_weight(w, src, tgt)
    assert rep.alpha == pytest.approx(1 / math.sqrt(2))
    assert float(new.double().pow(2).sum()) == pytest.approx(float(w.double().pow(2).sum()), rel=1e-6)


def test_copy_and_zero_rules() -> None:
    w = _weight(3, len(PAPER10), seed=6)
    target = ("B02", "B01")
    copy, rep = adapt_input_weight(w, PAPER10, target, rule="copy")
    assert torch.equal(copy[:, 1], w[:, PAPER10.index("B02")]) and rep.rule_of("B01").rule == "copy"
    zero, rep = adapt_input_weight(w, PAPER10, target, rule="zero")
    assert torch.count_nonzero(zero[:, 1]) == 0 and rep.rule_of("B01").rule == "zero"
    assert torch.equal(zero[:, 0], w[:, PAPER10.index("B02")])


def test_sentinel1_bands_match_their_own_sensor() -> None:
    assert nearest_band("VH", ("B02", "VV")) == "VV"
    assert nearest_band("VH", ("B02", "B03")) is None
    assert nearest_band("B02", ("VV", "B04", "B01")) == "B01"  # 492.4: B01 49.7 nm away, B04 172.2
    w = _weight(2, 2, seed=7)
    new, rep = adapt_input_weight(w, ("B02", "VV"), ("VV", "B02", "VH", "B03"), rule="copy")
    assert rep.rule_of("VH").source == "VV" and rep.rule_of("B03").source == "B02"
    assert torch.equal(new[:, 0], w[:, 1]) and torch.equal(new[:, 1], w[:, 0])


@pytest.mark.parametrize(
    ("src", "tgt", "match"),
    [
        ((), ("B02",), "names no bands"),
        (("B02", "B03"), ("VV", "VH"), "no band in common"),
        (("B02", "B03"), ("B02", "B99"), "unknown band"),
    ],
)
def test_bad_bands_are_refused(src: tuple[str, ...], tgt: tuple[str, ...], match: str) -> None:
    with pytest.raises(AdaptError, match=match):
        adapt_input_weight(_weight(2, max(1, len(src))), src, tgt)


def test_bad_rule_and_shape_are_refused() -> None:
    with pytest.raises(AdaptError, match="unknown new-band rule"):
        adapt_input_weight(_weight(2, 2), ("B02", "B03"), ("B02",), rule="tile")
    with pytest.raises(AdaptError, match="expected 3 input channels"):
        adapt_input_weight(_weight(2, 2), ("B02", "B03", "B04"), ("B02",))


class _LateStem(nn.Module):
    """A 10-channel conv registered first but run last, and a stem registered after it: the trace decides."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Conv2d(10, 10, 1)
        self.stem = nn.Conv2d(4, 10, 3, padding=1)
        self.fc = nn.Linear(10, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.mix(self.stem(x)).mean((2, 3)))


def test_input_layer_found_by_forward_order() -> None:
    m = _LateStem()
    assert find_input_layer(m, 4) == "stem"
    assert find_input_layer(m, 10) == "mix"  # registration order without an example
    assert find_input_layer(m, 10, torch.zeros(1, 10, 4, 4)) == "mix"
    m.input_layer = "stem"
    assert find_input_layer(m, 4) == "stem"
    with pytest.raises(AdaptError, match="no convolution or linear layer taking 7"):
        find_input_layer(nn.Sequential(nn.Conv2d(3, 4, 1)), 7)


def _timm(name: str, bands: int, classes: int, seed: int, **kw: object) -> nn.Module:
    torch.manual_seed(seed)
    if name == "mixer":
        from timm.models.mlp_mixer import MlpMixer

        return MlpMixer(num_classes=classes, in_chans=bands, **kw)  # type: ignore[arg-type]
    return timm.create_model(name, pretrained=False, in_chans=bands, num_classes=classes, **kw)


SMALL_VIT = {"img_size": 32, "patch_size": 8, "embed_dim": 48, "depth": 2, "num_heads": 2}
SMALL_MIXER = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "num_blocks": 2}
ARCHS = [
    ("resnet10t", {}, 32, "conv1.0", "fc"),
    ("vit_tiny_patch16_224", SMALL_VIT, 32, "patch_embed.proj", "head"),
    ("mixer", SMALL_MIXER, 32, "stem.proj", "head"),
]


@pytest.mark.parametrize(("arch", "kw", "size", "stem", "head"), ARCHS, ids=[a[0] for a in ARCHS])
def test_transfer_weights_on_timm_models(arch: str, kw: dict, size: int, stem: str, head: str) -> None:
    src_bands = PAPER10
    tgt_bands = ("B04", "B03", "B02", "B08", "B8A", "B09")  # reordered, 5 kept, 5 dropped, B09 added
    source = _timm(arch, len(src_bands), 19, 0, **kw)
    target = _timm(arch, len(tgt_bands), 10, 1, **kw)
    fresh_head = {k: v.clone() for k, v in target.state_dict().items() if k.startswith(f"{head}.")}
    example = torch.zeros(1, len(tgt_bands), size, size)
    assert find_input_layer(target, len(tgt_bands), example) == stem
    assert find_head(target, 10, example) == head
    rep, load = transfer_weights(target, source.state_dict(), src_bands, tgt_bands, 10, example=example)
    assert rep.layer == stem and rep.rule_of("B09").source == "B8A"
    src_state, tgt_state = source.state_dict(), target.state_dict()
    w_src, w_tgt = src_state[f"{stem}.weight"], tgt_state[f"{stem}.weight"]
    for j, b in enumerate(tgt_bands[:5]):
        assert torch.equal(w_tgt[:, j], w_src[:, src_bands.index(b)]), b
    for k, v in tgt_state.items():
        if k.startswith(f"{head}."):
            assert torch.equal(v, fresh_head[k]), k  # the classifier keeps its fresh initialisation
        elif k != f"{stem}.weight":
            assert torch.equal(v, src_state[k]), k
    assert set(load.head) == set(fresh_head)
    assert set(load.unused) == set(fresh_head)  # the pretraining head of the same names is not used


def test_transfer_weights_refuses_another_architecture() -> None:
    source = _timm("resnet10t", 4, 19, 0)
    target = _timm("resnet14t", 4, 10, 0)
    with pytest.raises(AdaptError, match=r"another architecture|differ in shape"):
        transfer_weights(target, source.state_dict(), PAPER10[:4], PAPER10[:4], 10, example=torch.zeros(1, 4, 32, 32))


def test_adapted_weights_are_numpy_independent_reads() -> None:
    """The kept kernels compared with an independent numpy re-indexing (no torch indexing involved)."""
    w = _weight(4, len(PAPER10), seed=9)
    target = (*contract.EUROSAT_BANDS[1:4], "B8A")
    new, _ = adapt_input_weight(w, PAPER10, target)
    arr = w.numpy()
    expected = np.stack([arr[:, list(PAPER10).index(b)] for b in target], axis=1)
    np.testing.assert_array_equal(new.numpy(), expected)
