"""The data contract against independent sources: bigearthnet-common's constants and formats.md facts."""

from __future__ import annotations

import bigearthnet_common.constants as ben
import numpy as np
import pytest

from landzoo import contract as c


def test_ben43_and_ben19_match_bigearthnet_common_original_order() -> None:
    assert tuple(ben.OLD_LABELS_ORIGINAL_ORDER) == c.BEN43
    assert tuple(ben.NEW_LABELS_ORIGINAL_ORDER) == c.BEN19
    assert len(c.BEN43) == 43 and len(c.BEN19) == 19


def test_43_to_19_mapping_matches_bigearthnet_common() -> None:
    for old in c.BEN43:
        assert c.BEN43_TO_BEN19[old] == ben.OLD2NEW_LABELS_DICT[old]
    dropped = {c.BEN43_CLC_CODES[n] for n, new in c.BEN43_TO_BEN19.items() if new is None}
    assert dropped == {122, 123, 124, 131, 132, 133, 141, 142, 332, 334, 423}


def test_label_conversion_groups_match_tu_berlin_indices() -> None:
    # label_indices.json `label_conversion` from formats.md 1.4, in 43-index terms.
    conversion = [[0, 1], [2], [11, 12, 13], [14, 15, 16, 18], [17], [19], [20], [21], [22], [23], [24],
                  [25, 31], [26, 27], [28], [29], [33, 34], [35, 36], [38, 39], [40, 41, 42]]  # fmt: skip
    for new_index, olds in enumerate(conversion):
        for old in olds:
            assert c.BEN43_TO_BEN19[c.BEN43[old]] == c.BEN19[new_index]


def test_ben43_to_ben19_orders_and_drops() -> None:
    out = c.ben43_to_ben19(["Sea and ocean", "Airports", "Continuous urban fabric", "Discontinuous urban fabric"])
    assert out == ["Urban fabric", "Marine waters"]
    with pytest.raises(c.ContractError, match="Mixed forests"):
        c.ben43_to_ben19(["Mixed forests"])


def test_band_orders() -> None:
    assert tuple(ben.BEN_CHANNELS) == c.S2_L2A_BANDS
    assert c.EUROSAT_BANDS[-1] == "B8A" and c.EUROSAT_BANDS[9] == "B10" and len(c.EUROSAT_BANDS) == 13
    assert c.SEN12MS_S2_BANDS[8] == "B8A" and len(c.SEN12MS_S2_BANDS) == 13
    assert c.BAND_SELECTIONS["s2_10m_20m"] == (
        "B02",
        "B03",
        "B04",
        "B08",
        "B05",
        "B06",
        "B07",
        "B8A",
        "B11",
        "B12",
    )
    assert set(c.BAND_SELECTIONS["s2_10m_20m"]) == set(ben.BEN_10m_20m_CHANNELS)
    assert c.BAND_SELECTIONS["rgb"] == tuple(ben.BEN_RGB_CHANNELS)
    assert c.BAND_SELECTIONS["s2_all"][:10] == c.BAND_SELECTIONS["s2_10m_20m"]
    assert {c.BANDS[b].ben_patch_px for b in c.S2_L2A_BANDS} == {120, 60, 20}
    assert c.BANDS["B8A"].ben_patch_px == 60 and c.BANDS["B01"].ben_patch_px == 20


def test_band_groups_keep_selection_order() -> None:
    groups = c.band_groups("s2_all")
    assert list(groups) == ["10m", "20m", "60m"]
    assert groups["10m"] == tuple(ben.BEN_10m_CHANNELS)
    assert groups["20m"] == ("B05", "B06", "B07", "B8A", "B11", "B12")
    assert groups["60m"] == ("B01", "B09")
    assert c.band_groups("B04,B03,B02,B05") == {"10m": ("B04", "B03", "B02"), "20m": ("B05",)}
    assert c.band_groups("s1_s2_10m_20m")["s1"] == ("VV", "VH")
    assert c.band_groups(c.EUROSAT_BANDS, native=False) == {"10m": c.EUROSAT_BANDS}


@pytest.mark.parametrize("bad", ["B13", "B04,B04", "rgbx", ""])
def test_resolve_bands_refuses_bad_selections(bad: str) -> None:
    with pytest.raises(c.ContractError):
        c.resolve_bands(bad)


def test_band_stats_match_bigearthnet_common() -> None:
    names = c.BAND_SELECTIONS["s2_all"]
    mean, std = c.band_stats(names)
    np.testing.assert_allclose(mean, [ben.BAND_STATS_S2["mean"][b] for b in names], rtol=1e-6)
    np.testing.assert_allclose(std, [ben.BAND_STATS_S2["std"][b] for b in names], rtol=1e-6)
    mean, std = c.band_stats("s1")
    np.testing.assert_allclose(mean, [ben.BAND_STATS_S1["mean"]["VV"], ben.BAND_STATS_S1["mean"]["VH"]], rtol=1e-6)
    with pytest.raises(c.ContractError, match="B10"):
        c.band_stats(["B10"])


def test_igbp_simplification_matches_official_formula() -> None:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(17), size=50)
    # official dataset.py aggregation, 0-based
    expected = np.stack([p[:, 0:5].sum(1), p[:, 5:7].sum(1), p[:, 7:9].sum(1), p[:, 9], p[:, 10],
                         p[:, 11] + p[:, 13], p[:, 12], p[:, 14], p[:, 15], p[:, 16]], axis=1)  # fmt: skip
    np.testing.assert_allclose(c.igbp17_to_simple10(p), expected)
    with pytest.raises(c.ContractError):
        c.igbp17_to_simple10(np.zeros(10))


def test_multi_hot() -> None:
    v = c.multi_hot(["Water", "Forest"], c.SIMPLE10)
    assert v.dtype == np.uint8 and v.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    with pytest.raises(c.ContractError, match="Lava"):
        c.multi_hot(["Lava"], c.SIMPLE10)
