"""Trainable parameter counts against the reference (Keras) code's counts and against timm itself.

Reference counts (10 bands, 19 classes, 19-unit head included) are from ../shared/reference/paper.md,
computed by building the reference code. Networks are built on the meta device: counting needs shapes only.
"""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from landzoo.models import build_backbone, count_params
from landzoo.models.attention import ECA, GhostConv

# paper.md section 2 / 3: [computed from the reference code]
REFERENCE = {
    "wrn10_2": 305_875,
    "wrn10_2_eca": 305_889,
    "wrn_eca_b0": 305_889,
    "vit_p6_120": 55_237_395,
    "vit_p20_120": 7_760_147,
    "mixer_p12_120": 446_723,
    "efficientnet_eca_b0": 3_419_583,
    # standard architectures that timm builds with exactly the Keras count
    "densenet121": 6_995_283,
    "densenet169": 12_538_067,
    "densenet201": 18_151_379,
    "efficientnet_b0": 4_033_903,
    "efficientnet_b4": 17_585_707,
    "vgg16": 14_728_467,  # timm features + the paper's GAP head
    "vgg19": 20_038_163,
}
KERAS_RESNET = {"resnet50": 23_595_475, "resnet101": 42_613_715, "resnet152": 58_280_403}


def _meta(name: str, **kw) -> nn.Module:
    with torch.device("meta"):
        return build_backbone(name, **kw)[0]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_counts(name: str) -> None:
    assert count_params(_meta(name)) == REFERENCE[name]


def test_eca_adds_one_conv1d_with_bias_per_block() -> None:
    eca = _meta("wrn10_2_eca")
    modules = [m for m in eca.modules() if isinstance(m, ECA)]
    assert [m.kernel_size for m in modules] == [3, 3, 5]  # one block per group at 32/64/128 channels
    assert count_params(eca) - count_params(_meta("wrn10_2")) == sum(m.kernel_size + 1 for m in modules) == 14
    assert count_params(_meta("wrn10_2_eca", eca_bias=False)) == 305_889 - 3


@pytest.mark.parametrize("name", ["wrn10_2_eca_ghost", "efficientnet_eca_b0_ghost"])
def test_ghost_fix_adds_exactly_the_lost_depthwise_branch(name: str) -> None:
    fixed, buggy = _meta(name), _meta(name, ghost_fix=False)
    ghosts = [m for m in fixed.modules() if isinstance(m, GhostConv)]
    assert ghosts and all(g.fixed for g in ghosts)
    # fixed keeps BN(h) + depthwise 3x3 (9h, no bias) + BN(h) where Keras kept only BN(h): 11h more per module
    assert count_params(fixed) - count_params(buggy) == sum(11 * (g.out_chs // 2) for g in ghosts)


def test_mixer_token_axis_norm_quirk_count() -> None:
    # LayerNorm over the 100 tokens (reference) vs over the 128 channels: 2 norms x 4 blocks x 2 x (128 - 100)
    assert count_params(_meta("mixer_p12_120", norm_axis="channels")) - 446_723 == 2 * 4 * 2 * (128 - 100)


def test_vit_learned_position_table_count() -> None:
    # the reference's rank-1 "embedding" is 64 weights; a learned table is 400 x 64
    assert count_params(_meta("vit_p6_120", pos_embed="learned")) - 55_237_395 == 400 * 64 - 64


@pytest.mark.parametrize(
    "name", ["resnet50", "resnet101", "resnet152", "densenet121", "efficientnet_b0", "efficientnet_b7"]
)
def test_timm_backed_equal_direct_timm(name: str) -> None:
    with torch.device("meta"):
        direct = timm.create_model(name, pretrained=False, in_chans=10, num_classes=19)
    assert count_params(_meta(name)) == count_params(direct)


@pytest.mark.parametrize("name", sorted(KERAS_RESNET))
def test_resnet_keras_difference_is_the_conv_biases(name: str) -> None:
    model = _meta(name)
    conv_biases = sum(m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d))
    assert all(m.bias is None for m in model.modules() if isinstance(m, nn.Conv2d))
    assert count_params(model) + conv_biases == KERAS_RESNET[name]


@pytest.mark.parametrize("name", ["vgg16", "vgg19"])
def test_vgg_head_is_keras_not_timm(name: str) -> None:
    with torch.device("meta"):
        direct = timm.create_model(name, pretrained=False, in_chans=10, num_classes=19)
    ours = _meta(name)
    features = count_params(direct.features)
    assert count_params(ours) == features + 512 * 19 + 19
    # what timm's own head would add: the 7x7 ConvMlp to 4096 and a 4096-wide classifier
    assert count_params(direct) - count_params(ours) == count_params(direct.pre_logits) + 4096 * 19 + 19 - (
        512 * 19 + 19
    )


def test_counts_follow_band_and_class_numbers() -> None:
    # 3 bands, 10 classes: stem conv loses 7 x 16 x 9 weights, head loses 9 x (128 + 1)
    assert count_params(_meta("wrn10_2", in_chans=3, num_classes=10)) == 305_875 - 7 * 16 * 9 - 9 * 129
