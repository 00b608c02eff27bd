"""Layer-level behaviour of the ports: ECA, SE, CBAM, coordinate attention, Ghost conv, ViT/Mixer quirks, WRN pool."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landzoo.models import build_backbone
from landzoo.models.attention import CBAM, ECA, SE, CoordAttention, GhostConv, eca_kernel_size


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize(
    ("channels", "k"), [(32, 3), (64, 3), (128, 5), (16, 3), (256, 5), (512, 5), (1024, 5), (8, 3)]
)
def test_eca_kernel_rule(channels: int, k: int) -> None:
    t = int(abs((math.log2(channels) + 1) / 2))
    assert k == (t if t % 2 else t + 1)
    assert eca_kernel_size(channels) == k


def test_eca_matches_a_manual_conv1d_with_bias() -> None:
    torch.manual_seed(0)
    eca = ECA(32)
    with torch.no_grad():
        eca.conv.bias.fill_(0.3)
    x = torch.randn(2, 32, 5, 5)
    xn = x.numpy().astype(np.float64)
    w = eca.conv.weight.detach().numpy().ravel().astype(np.float64)
    means = np.pad(xn.mean(axis=(2, 3)), ((0, 0), (1, 1)))  # zero "same" padding for k = 3
    logits = np.stack([means[:, i : i + 3] @ w for i in range(32)], axis=1) + 0.3
    expected = xn * _sigmoid(logits)[:, :, None, None]
    np.testing.assert_allclose(eca(x).detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_se_and_cbam_match_manual_computations() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, 6, 6)
    xn = x.numpy().astype(np.float64)
    se = SE(32)
    w1, b1 = se.fc1.weight.detach().double().numpy(), se.fc1.bias.detach().double().numpy()
    w2, b2 = se.fc2.weight.detach().double().numpy(), se.fc2.bias.detach().double().numpy()
    h = xn.mean(axis=(2, 3)) @ w1.T + b1
    h = h * _sigmoid(h)  # swish, as the reference
    np.testing.assert_allclose(
        se(x).detach().numpy(), xn * _sigmoid(h @ w2.T + b2)[:, :, None, None], rtol=1e-5, atol=1e-6
    )
    assert w1.shape == (2, 32)  # ratio 16

    cbam = CBAM(32)
    w1, b1 = cbam.fc1.weight.detach().double().numpy(), cbam.fc1.bias.detach().double().numpy()
    w2, b2 = cbam.fc2.weight.detach().double().numpy(), cbam.fc2.bias.detach().double().numpy()

    def mlp(v: np.ndarray) -> np.ndarray:
        return np.maximum(v @ w1.T + b1, 0) @ w2.T + b2

    ca = _sigmoid(mlp(xn.mean(axis=(2, 3))) + mlp(xn.max(axis=(2, 3))))
    y = xn * ca[:, :, None, None]
    sa_in = torch.from_numpy(np.concatenate([y.mean(1, keepdims=True), y.max(1, keepdims=True)], 1)).float()
    sa = torch.sigmoid(torch.nn.functional.conv2d(sa_in, cbam.spatial.weight.detach(), padding=3)).double().numpy()
    np.testing.assert_allclose(cbam(x).detach().numpy(), y * sa, rtol=1e-4, atol=1e-5)


def test_coord_attention_matches_a_manual_computation() -> None:
    torch.manual_seed(0)
    ca = CoordAttention(64).eval()  # running statistics: BN is an affine map
    with torch.no_grad():
        ca.bn1.running_mean.uniform_(-0.1, 0.1)
        ca.bn1.running_var.uniform_(0.5, 1.5)
        ca.bn1.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 64, 4, 7)
    xn = x.numpy().astype(np.float64)
    p = {k: v.detach().double().numpy() for k, v in ca.state_dict().items()}
    assert p["conv1.weight"].shape == (8, 64)  # mip = max(8, 64 // 32)
    strips = np.concatenate([xn.mean(axis=3), xn.mean(axis=2)], axis=2)  # [B, C, H + W]
    y = np.einsum("mc,bcl->bml", p["conv1.weight"], strips) + p["conv1.bias"][None, :, None]
    y = (y - p["bn1.running_mean"][None, :, None]) / np.sqrt(p["bn1.running_var"][None, :, None] + 1e-5)
    y = y * p["bn1.weight"][None, :, None] + p["bn1.bias"][None, :, None]
    y = y * np.clip(y + 3, 0, 6) / 6  # h-swish
    a_h = _sigmoid(np.einsum("cm,bml->bcl", p["conv_h.weight"], y[:, :, :4]) + p["conv_h.bias"][None, :, None])
    a_w = _sigmoid(np.einsum("cm,bml->bcl", p["conv_w.weight"], y[:, :, 4:]) + p["conv_w.bias"][None, :, None])
    expected = xn * a_h[:, :, :, None] * a_w[:, :, None, :]
    np.testing.assert_allclose(ca(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


def test_ghost_bug_reproduction_and_fix() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 6)
    buggy = GhostConv(8, 16, 3, fixed=False).eval()
    y = buggy(x)
    x1 = buggy.primary(x)
    bn = buggy.cheap[0]
    manual = torch.relu(
        (x1 - bn.running_mean[None, :, None, None])
        / torch.sqrt(bn.running_var[None, :, None, None] + 1e-5)
        * bn.weight[None, :, None, None]
        + bn.bias[None, :, None, None]
    )
    torch.testing.assert_close(y, torch.cat([x1, manual], 1))
    fixed = GhostConv(8, 16, 3, fixed=True).eval()
    base = fixed(x)
    with torch.no_grad():
        fixed.cheap[2].weight.mul_(2.0)  # the depthwise branch now reaches the output
    changed = fixed(x)
    torch.testing.assert_close(base[:, :8], changed[:, :8])
    assert not torch.allclose(base[:, 8:], changed[:, 8:])


def test_vit_rank1_position_embedding() -> None:
    vit, _ = build_backbone("vit_p20_120")
    x = torch.zeros(1, 10, 120, 120)
    pos = vit._positions(x)[0]
    w = vit.pos_embed.weight[:, 0]
    torch.testing.assert_close(pos, torch.arange(36.0)[:, None] * w[None, :])


def test_vit_heads_have_key_dim_64() -> None:
    vit, _ = build_backbone("vit_p40_120")
    attn = vit.blocks[0].attn
    assert attn.q.weight.shape == (4 * 64, 64) and attn.proj.weight.shape == (64, 4 * 64)


def test_mixer_normalises_over_tokens() -> None:
    mixer, _ = build_backbone("mixer_p12_120")
    norm = mixer.blocks[0].norm1
    torch.manual_seed(0)
    x = torch.randn(2, 100, 128)
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)


def test_wrn_paper_pool_sees_only_the_top_left_window() -> None:
    torch.manual_seed(0)
    paper, _ = build_backbone("wrn10_2", pool="paper")
    glob, _ = build_backbone("wrn10_2", pool="global")
    glob.load_state_dict(paper.state_dict())
    paper.eval()
    glob.eval()
    x = torch.randn(1, 10, 60, 60)
    x2 = x.clone()
    x2[..., 50:, 50:] += 5.0  # bottom-right corner: reaches only final-map cells beyond the 8x8 window
    with torch.no_grad():
        torch.testing.assert_close(paper(x), paper(x2))
        assert not torch.allclose(glob(x), glob(x2))
        x3 = x.clone()
        x3[..., :5, :5] += 5.0
        assert not torch.allclose(paper(x), paper(x3))


def test_wrn_blocks_and_dropout_placement() -> None:
    net, _ = build_backbone("wrn_eca_b3", dropout=0.3)
    groups = list(net.groups)
    # N = 3: one expanding block, two pre-activation blocks (with dropout), then BN + ReLU
    assert [type(m).__name__ for m in groups[0]] == ["ExpandBlock", "PreActBlock", "PreActBlock", "BatchNorm2d", "ReLU"]
    assert groups[0][1].drop.p == 0.3
    base, _ = build_backbone("wrn10_2")
    assert not any(isinstance(m, torch.nn.Dropout) for m in base.modules())  # N = 1: no dropout at all


def test_tf_padding_option_keeps_shapes_and_counts() -> None:
    from timm.layers import Conv2dSame

    from landzoo.models import count_params

    sym, _ = build_backbone("wrn10_2_eca")
    tf, _ = build_backbone("wrn10_2_eca", tf_padding=True)
    assert any(isinstance(m, Conv2dSame) for m in tf.modules())
    assert not any(isinstance(m, Conv2dSame) for m in sym.modules())
    assert count_params(tf) == count_params(sym) == 305_889
    x = torch.randn(1, 10, 60, 60)
    assert tf.forward_features(x).shape == sym.forward_features(x).shape == (1, 128, 15, 15)


def test_blocks_rule_option_reaches_the_registered_variant() -> None:
    with torch.device("meta"):
        paper, _ = build_backbone("wrn_eca_b7")
        single, _ = build_backbone("wrn_eca_b7", blocks_rule="single")
    assert paper.blocks_per_group == 17 and single.blocks_per_group == 5
