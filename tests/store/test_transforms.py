"""On-device transforms: TF-exact bicubic resampling, normalisation by band name, dihedral augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from landzoo import contract
from landzoo.transforms import (
    InputTransform,
    RandomDihedral,
    dihedral,
    random_dihedral,
    random_dihedral_groups,
    resample,
)


def tf_resize_bicubic_reference(img: np.ndarray, out: int) -> np.ndarray:
    """TF2 ``resize_bicubic(half_pixel_centers=True)`` written out pixel by pixel, straight from the C++ kernel.

    Keys cubic a=-0.5 sampled from a 1024-step table, taps outside the image dropped, weights renormalised.
    """

    def kernel(t: float) -> float:
        a, t = -0.5, abs(t)
        if t <= 1:
            return ((a + 2) * t - (a + 3)) * t * t + 1
        if t < 2:
            return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
        return 0.0

    def weights(in_size: int, o: int) -> list[tuple[int, float]]:
        loc = (o + 0.5) * (in_size / out) - 0.5
        base = math.floor(loc)
        delta = round((loc - base) * 1024) / 1024
        taps = [(base + k, kernel(delta - k)) for k in (-1, 0, 1, 2)]
        kept = [(i, w) for i, w in taps if 0 <= i < in_size]
        total = sum(w for _, w in kept)
        return [(i, w / total) for i, w in kept]

    h, w = img.shape
    res = np.zeros((out, out))
    for y in range(out):
        for x in range(out):
            res[y, x] = sum(wy * wx * img[iy, ix] for iy, wy in weights(h, y) for ix, wx in weights(w, x))
    return res


@pytest.mark.parametrize(("size_in", "size_out"), [(6, 12), (20, 24), (12, 6), (5, 13)])
def test_bicubic_matches_tf_kernel_written_out(size_in: int, size_out: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, size_in, size_in, generator=g, dtype=torch.float32) * 4 - 2
    y = resample(x, size_out)
    assert y.shape == (2, 3, size_out, size_out)
    for b in range(2):
        for c in range(3):
            ref = tf_resize_bicubic_reference(x[b, c].double().numpy(), size_out)
            np.testing.assert_allclose(y[b, c].numpy(), ref, atol=1e-5)


def test_bicubic_upsampling_matches_pillow_and_torch_antialias() -> None:
    """For a 2x upsample (exact table steps) three independent implementations agree: Pillow, torch-aa, ours."""
    x = torch.rand(1, 1, 60, 60, generator=torch.Generator().manual_seed(1)) * 1000
    ours = resample(x, 120)[0, 0].numpy()
    pil = np.asarray(Image.fromarray(x[0, 0].numpy(), mode="F").resize((120, 120), Image.BICUBIC))
    aa = F.interpolate(x, size=(120, 120), mode="bicubic", antialias=True, align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(ours, pil, atol=1e-3)
    np.testing.assert_allclose(ours, aa, atol=1e-3)
    # and it is not PyTorch's default bicubic (a=-0.75, edges repeated)
    plain = F.interpolate(x, size=(120, 120), mode="bicubic", align_corners=False)[0, 0].numpy()
    assert np.abs(ours - plain).max() > 1.0


def test_torch_bicubic_mode_batched_equals_single_band() -> None:
    x = torch.rand(3, 4, 30, 30, generator=torch.Generator().manual_seed(2))
    y = resample(x, 60, mode="torch-bicubic")
    for b in range(3):
        for c in range(4):
            single = F.interpolate(x[b : b + 1, c : c + 1], size=(60, 60), mode="bicubic", align_corners=False)
            torch.testing.assert_close(y[b, c], single[0, 0])
    with pytest.raises(ValueError, match="unknown resampling mode"):
        resample(x, 10, mode="lanczos")


def test_input_transform_normalises_by_band_name_and_resamples() -> None:
    bands = ("B04", "B03", "B02", "B08", "B05", "B06", "B07", "B8A", "B11", "B12")  # paper-era order
    t = InputTransform(bands, 60)  # 20 m groups pass at their size; 10 m ones are resampled 120 -> 60 px
    g = torch.Generator().manual_seed(3)
    image = {
        "10m": torch.randint(0, 10000, (2, 4, 120, 120), generator=g).to(torch.uint16),
        "20m": torch.randint(0, 10000, (2, 6, 60, 60), generator=g).to(torch.uint16),
    }
    out = t(image)
    assert out.shape == (2, 10, 60, 60) and out.dtype == torch.float32
    for c, name in enumerate(bands[4:]):
        mean, std = contract.BEN_BAND_STATS[name]
        expected = (image["20m"][:, c].double() - mean) / std
        torch.testing.assert_close(out[:, 4 + c].double(), expected, atol=1e-5, rtol=1e-5)
    for c, name in enumerate(bands[:2]):  # the pixel-by-pixel reference is slow: two bands show the order
        mean, std = contract.BEN_BAND_STATS[name]
        norm = ((image["10m"][0, c].double() - mean) / std).numpy()
        np.testing.assert_allclose(out[0, c].numpy(), tf_resize_bicubic_reference(norm, 60), atol=1e-4)


def test_input_transform_refuses_wrong_groups() -> None:
    t = InputTransform("s2_10m_20m", 60)
    with pytest.raises(contract.ContractError, match="band groups"):
        t({"10m": torch.zeros(1, 4, 120, 120)})
    with pytest.raises(contract.ContractError, match="expected \\[B, 6, H, W\\]"):
        t({"10m": torch.zeros(1, 4, 120, 120), "20m": torch.zeros(1, 5, 60, 60)})
    t.check_groups({"10m": ("B02", "B03", "B04", "B08"), "20m": ("B05", "B06", "B07", "B8A", "B11", "B12")})
    with pytest.raises(contract.ContractError, match="model expects"):
        t.check_groups({"10m": ("B04", "B03", "B02", "B08"), "20m": ("B05", "B06", "B07", "B8A", "B11", "B12")})
    with pytest.raises(contract.ContractError, match="not grouped by resolution"):
        InputTransform(("B02", "B05", "B03"), 120)


def _which(sample: torch.Tensor, original: torch.Tensor) -> int:
    """Number of the dihedral transform that maps ``original`` to ``sample`` (all channels at once)."""
    hits = [k for k in range(8) if torch.equal(dihedral(original, k), sample)]
    assert len(hits) == 1, f"sample matches transforms {hits}"
    return hits[0]


def test_random_dihedral_is_one_of_eight_per_sample_same_for_all_bands() -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(400, 3, 8, 8, generator=g)
    variants = torch.stack([dihedral(x[0], k) for k in range(8)])
    assert len({tuple(v.flatten().tolist()) for v in variants}) == 8  # the 8 transforms are distinct
    y, choice = random_dihedral(x, torch.Generator().manual_seed(5), return_choice=True)
    ks = [_which(y[i], x[i]) for i in range(len(x))]
    assert ks == choice.tolist()
    counts = np.bincount(ks, minlength=8)
    assert counts.min() > 20  # all eight occur, roughly uniformly (400 / 8 = 50 expected)
    for i in range(len(x)):  # same transform for every band of a sample
        for c in range(3):
            assert torch.equal(y[i, c], dihedral(x[i, c], ks[i]))
    again = random_dihedral(x, torch.Generator().manual_seed(5))
    assert torch.equal(again, y)  # reproducible from the generator


def test_dihedral_groups_share_the_draw_across_resolutions() -> None:
    g = torch.Generator().manual_seed(6)
    image = {"10m": torch.rand(64, 4, 12, 12, generator=g), "20m": torch.rand(64, 6, 6, 6, generator=g)}
    out = random_dihedral_groups(image, torch.Generator().manual_seed(7))
    k10 = [_which(out["10m"][i], image["10m"][i]) for i in range(64)]
    k20 = [_which(out["20m"][i], image["20m"][i]) for i in range(64)]
    assert k10 == k20 and len(set(k10)) > 4
    # dihedral transforms commute with the resampling, so augmenting before or after InputTransform agrees
    t = InputTransform("s2_10m_20m", 12)
    # at the native footprint (10 m 120 px, 20 m 60 px): each pixel of the small fields becomes a 10 x 10 block
    raw = {k: (v * 5000).to(torch.uint16).repeat_interleave(10, -1).repeat_interleave(10, -2) for k, v in image.items()}
    before = t(random_dihedral_groups(raw, torch.Generator().manual_seed(8)))
    after = random_dihedral(t(raw), torch.Generator().manual_seed(8))
    torch.testing.assert_close(before, after, atol=1e-5, rtol=1e-5)


def test_random_dihedral_module_only_in_training() -> None:
    m = RandomDihedral(torch.Generator().manual_seed(0))
    x = torch.rand(16, 2, 5, 5)
    m.eval()
    assert torch.equal(m(x), x)
    m.train()
    assert not torch.equal(m(x), x)


def test_resampling_matrix_is_cached_per_device_and_usable_after_inference_mode() -> None:
    """The matrix is built once per (sizes, device, dtype); one first built under inference mode still works
    where autograd records (inference tensors could not be saved for backward)."""
    from landzoo.transforms import _device_matrix

    _device_matrix.cache_clear()
    with torch.inference_mode():
        resample(torch.rand(1, 2, 60, 60), 120)
    x = torch.rand(1, 2, 60, 60, requires_grad=True)
    resample(x, 120).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    info = _device_matrix.cache_info()
    assert info.misses == 1 and info.hits == 1  # square input: one matrix serves both axes; built once
