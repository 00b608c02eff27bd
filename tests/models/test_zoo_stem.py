"""The input stem: band groups at native resolution or one checked stacked tensor, never the wrong size silently."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landzoo import contract
from landzoo.models import LandCoverModel, create_model
from landzoo.transforms import tf_bicubic_matrix


def _groups(batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "10m": torch.randint(0, 3000, (batch, 4, 120, 120), generator=g).to(torch.uint16),
        "20m": torch.randint(0, 3000, (batch, 6, 60, 60), generator=g).to(torch.uint16),
    }


def test_model_knows_its_contract() -> None:
    m = create_model("wrn_eca_b1")
    assert isinstance(m, LandCoverModel)
    assert m.bands == contract.resolve_bands("s2_10m_20m")
    assert m.classes == contract.BEN19
    assert m.input_size == 70
    assert m.contract()["input_size"] == 70
    assert create_model("resnet50").input_size == 120


def test_band_groups_are_normalised_and_resampled_like_the_paper() -> None:
    torch.manual_seed(0)
    m = create_model("wrn10_2_eca").eval()
    groups = _groups()
    # independent construction of the model input: z-score with the contract's statistics, then TF bicubic
    parts = []
    for name, bands in (
        ("10m", contract.BAND_SELECTIONS["s2_10m_20m"][:4]),
        ("20m", contract.BAND_SELECTIONS["s2_10m_20m"][4:]),
    ):
        x = groups[name].numpy().astype(np.float64)
        mean = np.array([contract.BEN_BAND_STATS[b][0] for b in bands])[None, :, None, None]
        std = np.array([contract.BEN_BAND_STATS[b][1] for b in bands])[None, :, None, None]
        z = (x - mean) / std
        r = tf_bicubic_matrix(x.shape[-1], 60).double().numpy()
        parts.append(np.einsum("oh,bchw,pw->bcop", r, z, r))
    stacked = torch.from_numpy(np.concatenate(parts, axis=1)).float()
    with torch.no_grad():
        from_groups = m(groups)
        from_stacked = m(stacked)
    torch.testing.assert_close(from_groups, from_stacked, rtol=1e-4, atol=1e-4)
    assert from_groups.shape == (2, 19)


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((2, 10, 120, 120), r"\[B, 10, 60, 60\].*got \[2, 10, 120, 120\]"),
        ((2, 9, 60, 60), "9, 60, 60"),
        ((10, 60, 60), "got"),
    ],
)
def test_stacked_tensor_of_wrong_shape_is_refused(shape: tuple[int, ...], match: str) -> None:
    m = create_model("wrn10_2")
    with pytest.raises(contract.ContractError, match=match):
        m(torch.zeros(shape))


def test_stacked_integers_are_refused() -> None:
    m = create_model("wrn10_2")
    with pytest.raises(contract.ContractError, match="normalised floats"):
        m(torch.zeros(1, 10, 60, 60, dtype=torch.int16))


def test_wrong_band_groups_are_refused() -> None:
    m = create_model("wrn10_2")
    groups = _groups()
    del groups["20m"]
    with pytest.raises(contract.ContractError, match="band groups"):
        m(groups)
    bad = _groups()
    bad["20m"] = bad["20m"][:, :5]
    with pytest.raises(contract.ContractError, match="20m"):
        m(bad)


def test_other_bands_and_classes() -> None:
    m = create_model("vit_p20_120", bands="rgb", classes="eurosat10")
    assert m.backbone.in_chans == 3
    with torch.no_grad():
        y = m(torch.zeros(2, 3, 120, 120))
    assert y.shape == (2, 10)
    p = m.predict_proba(torch.zeros(1, 3, 120, 120))
    assert ((p > 0) & (p < 1)).all()


def test_input_size_override() -> None:
    m = create_model("wrn10_2", input_size=90)
    assert m.input_size == 90
    assert m(torch.zeros(1, 10, 90, 90)).shape == (1, 19)
    v = create_model("mixer_tiny_p12_120", input_size=60)  # 25 tokens: the token-axis norm follows
    assert v.backbone.num_tokens == 25
    with pytest.raises(contract.ContractError):
        v(torch.zeros(1, 10, 120, 120))


def test_paper_pool_needs_an_8x8_map() -> None:
    from landzoo.models import ModelError

    with pytest.raises(ModelError, match="pool='global'"):
        create_model("wrn10_2", input_size=28)
    assert create_model("wrn10_2", input_size=28, pool="global").input_size == 28


def test_backbone_and_contract_must_agree() -> None:
    from landzoo.models import build_backbone

    net, size = build_backbone("wrn10_2", num_classes=19)
    with pytest.raises(contract.ContractError, match="19 outputs but 10 classes"):
        LandCoverModel(net, "s2_10m_20m", size, "eurosat10")
    with pytest.raises(contract.ContractError, match="10 channels but 3 bands"):
        LandCoverModel(net, "rgb", size, "ben19")


@pytest.mark.parametrize(
    ("px10", "px20", "why"),
    [
        (1200, 600, "a scene-sized image squeezed into one patch"),
        (240, 60, "groups of different footprints"),
        (120, 30, "a 20 m group at half its footprint"),
        (120, 61, "an off-by-one 20 m group"),
    ],
)
def test_inputs_that_are_not_one_patch_are_refused(px10: int, px20: int, why: str) -> None:
    """predict_proba scores one 1200 m patch: 10 m at 120 px and 20 m at 60 px, nothing else is resized into it."""
    m = create_model("wrn10_2").eval()
    groups = {
        "10m": torch.zeros(1, 4, px10, px10, dtype=torch.uint16),
        "20m": torch.zeros(1, 6, px20, px20, dtype=torch.uint16),
    }
    with pytest.raises(contract.ContractError, match=rf"10m {px10}x{px10} px, 20m {px20}x{px20} px.*landzoo map"):
        m.predict_proba(groups)
    assert m.predict_proba(_groups(1)).shape == (1, 19)  # the native footprint passes


def test_one_grid_models_take_any_square_patch_shared_by_all_groups() -> None:
    """Bands resampled to one 10 m grid (SEN12MS 256 px, EuroSAT 64 px): any square size, refused if not square."""
    m = create_model("wrn10_2", native=False).eval()
    for px in (64, 256):
        assert m.predict_proba({"10m": torch.zeros(2, 10, px, px, dtype=torch.uint16)}).shape == (2, 19)
    with pytest.raises(contract.ContractError, match="10m 64x32 px"):
        m({"10m": torch.zeros(1, 10, 64, 32, dtype=torch.uint16)})
