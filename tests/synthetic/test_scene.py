"""The scene generator: labels follow the mix, resolutions are area averages, draws are pure functions of the seed."""

from __future__ import annotations

import numpy as np

from landzoo import contract
from landzoo.synthetic import patch_rng, scene

KINDS = ("arable", "water_course", "suburban", "road_rail", "pasture")


def test_present_kinds_cover_at_least_min_frac() -> None:
    bank = scene.Bank(0)
    for i in range(60):
        sc = scene.draw_scene(
            np.random.default_rng(i), bank, KINDS, [0.6, 1, 0.05, 1, 0.3], 60, ("B02", "B08"), min_frac=0.03
        )
        counts = np.bincount(sc.seg.ravel(), minlength=len(KINDS)) / sc.seg.size
        np.testing.assert_allclose(counts, sc.fractions)
        assert np.all((counts == 0) | (counts >= 0.03)), counts
        assert sc.present() and abs(sc.fractions.sum() - 1) < 1e-9


def test_coarse_bands_are_area_averages_of_the_10m_field() -> None:
    rng = np.random.default_rng(1)
    field = rng.random((3, 120, 120)).astype(np.float32)
    for factor in (2, 6):
        expected = field.reshape(3, 120 // factor, factor, 120 // factor, factor).mean(axis=(2, 4))
        np.testing.assert_allclose(scene.area_average(field, factor), expected, rtol=1e-5)
    small = rng.random((1, 9, 9)).astype(np.float32)
    padded = np.pad(small, [(0, 0), (0, 1), (0, 1)], mode="edge")  # size 2: window [i, i+1], edge repeated
    expected = (padded[:, :-1, :-1] + padded[:, 1:, :-1] + padded[:, :-1, 1:] + padded[:, 1:, 1:]) / 4
    np.testing.assert_allclose(scene.box_blur(small, 2), expected, rtol=1e-5)


def test_sensor_bands_have_native_sizes_and_valid_dns() -> None:
    bank = scene.Bank(3)
    rng = patch_rng(3, "bigearthnet-v1", 0)
    sc = scene.draw_scene(rng, bank, ("broadleaf_forest", "water_body"), [0.5, 0.5], 120, contract.S2_L2A_BANDS)
    bands = scene.sensor_bands(rng, sc, "L2A", native=True)
    for name, arr in bands.items():
        assert arr.dtype == np.uint16 and arr.shape == (contract.band(name).ben_patch_px,) * 2
        assert arr.min() >= 1
    s1 = scene.sensor_s1(rng, sc)
    assert s1["VV"].dtype == np.float32 and s1["VH"].min() >= -50 and s1["VV"].max() <= 20
    water = sc.seg == 1
    assert s1["VV"][water].mean() < s1["VV"][~water].mean() - 5  # water is dark in radar too


def test_a_patch_is_a_pure_function_of_its_seed() -> None:
    def draw(bank_seed: int, patch: int) -> np.ndarray:
        rng = patch_rng(9, "eurosat", patch)
        sc = scene.draw_scene(rng, scene.Bank(bank_seed), ("arable", "pasture"), [0.5, 0.5], 64, ("B04", "B08"))
        return scene.sensor_bands(rng, sc, "L1C", native=False)["B08"]

    assert np.array_equal(draw(9, 4), draw(9, 4))
    assert not np.array_equal(draw(9, 4), draw(9, 5))
    assert not np.array_equal(draw(9, 4), draw(10, 4))
