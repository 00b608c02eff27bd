"""Registration in timm and in the landzoo catalogue; names, errors, no weights."""

from __future__ import annotations

import pytest
import timm
import torch

import landzoo.models as zoo
from landzoo import scaling
from landzoo.models import ModelError, count_params, get_model_info, list_models

OWN = [
    "wrn10_2",
    "wrn10_2_eca",
    "wrn10_2_se",
    "wrn10_2_cbam",
    "wrn10_2_coord",
    *(f"wrn10_2{a}_ghost" for a in ("", "_eca", "_se", "_cbam", "_coord")),
    *(f"wrn_eca_b{i}" for i in range(8)),
    *(f"efficientnet_eca_b{i}" for i in range(8)),
    *(f"vit_p{p}_120" for p in (6, 12, 20, 30, 40)),
    "mixer_p12_120",
    "mixer_tiny_p12_120",
]
STANDARD = [
    "resnet50",
    "resnet101",
    "resnet152",
    "vgg16",
    "vgg19",
    "densenet121",
    "densenet169",
    "densenet201",
    *(f"efficientnet_b{i}" for i in range(8)),
]


def test_catalogue_holds_every_name_of_the_issue() -> None:
    names = list_models()
    assert set(OWN + STANDARD) <= set(names)
    assert len(names) == len(set(names))
    assert all(n == n.lower() for n in names)
    assert list(zoo.catalogue()) == names


@pytest.mark.parametrize("name", [n for n in list_models() if get_model_info(n).source == "landzoo"])
def test_own_architectures_are_in_timm(name: str) -> None:
    assert name in timm.list_models()
    assert get_model_info(name).timm_name == name


def test_timm_create_model_by_name() -> None:
    model = timm.create_model("wrn_eca_b0", in_chans=10, num_classes=19)
    assert count_params(model) == 305_889
    assert model.pretrained_cfg["input_size"] == (10, 60, 60)
    # the registered default config already says 10 bands and 19 classes
    assert count_params(timm.create_model("wrn_eca_b0")) == 305_889
    assert timm.create_model("vit_p20_120", in_chans=3, num_classes=5)(torch.zeros(1, 3, 120, 120)).shape == (1, 5)


def test_timm_vgg_gap_is_registered() -> None:
    with torch.device("meta"):
        assert count_params(timm.create_model("vgg16_gap", in_chans=10, num_classes=19)) == 14_728_467


def test_pretrained_weights_are_refused_everywhere() -> None:
    with pytest.raises(ModelError, match="pretrained"):
        timm.create_model("wrn10_2", pretrained=True)
    with pytest.raises(ModelError, match="pretrained"):
        zoo.create_model("resnet50", pretrained=True)
    with pytest.raises(ModelError, match="pretrained"):
        zoo.create_model("vit_p20_120", pretrained=True)


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'wrn_eca_bO'.*wrn_eca_b0"):
        zoo.create_model("wrn_eca_bO")
    with pytest.raises(ModelError, match=r"did you mean.*resnet50"):
        get_model_info("ResNet50")
    with pytest.raises(ModelError, match="landzoo models"):
        get_model_info("zzzzzzzz")


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(ModelError, match="attention"):
        zoo.create_model("wrn10_2", attention="eca2")
    with pytest.raises(ModelError, match="unknown option"):
        zoo.create_model("wrn10_2", widen=3)
    with pytest.raises(ModelError, match="resnet50"):
        zoo.create_model("resnet50", not_an_option=1)


def test_info_of_scaled_variants() -> None:
    for phi in range(8):
        info = get_model_info(f"wrn_eca_b{phi}")
        c = scaling.variant_coefficients(phi)
        assert info.family == "wrn_eca"
        assert info.scaling == {"alpha": 1.2, "beta": 1.1, "gamma": 1.15, "phi": float(phi)}
        assert info.input_size == scaling.scaled_resolution(c.resolution)
        assert info.bands == "s2_10m_20m"
    assert get_model_info("resnet50").input_size == 120
    assert get_model_info("resnet50").source == "timm"
    assert get_model_info("wrn10_2").scaling is None
    assert get_model_info("vit_p6_120").fixed_size


def test_families_and_filters() -> None:
    assert list_models(family="vit") == [f"vit_p{p}_120" for p in (6, 12, 20, 30, 40)]
    assert list_models("wrn_eca_b*") == [f"wrn_eca_b{i}" for i in range(8)]
    assert list_models()[0] == "wrn10_2"  # own architectures are listed first


def test_options_reach_the_architecture() -> None:
    m = zoo.create_model("wrn10_2_eca", bn_momentum=0.9, pool="global", init="torch")
    bns = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert bns and all(b.momentum == 0.9 for b in bns)
    assert all(float(b.weight.detach().min()) == 1.0 for b in bns)  # torch init: gamma = 1
    assert m.backbone.pool == "global"
    default = zoo.create_model("wrn10_2_eca")
    bns = [x for x in default.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    assert all(b.momentum == 0.1 for b in bns)
    assert all(float(b.weight.detach().abs().max()) <= 0.05 for b in bns)  # paper init: Keras "uniform" gamma


def test_plain_import_landzoo_registers_in_timm() -> None:
    """In a fresh interpreter, ``import landzoo`` alone is enough for timm to build the zoo by name."""
    import subprocess
    import sys

    code = (
        "import timm, landzoo\n"
        "m = timm.create_model('wrn_eca_b0', in_chans=10, num_classes=19)\n"
        "print(sum(p.numel() for p in m.parameters() if p.requires_grad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split()[-1] == "305889"  # WRN-10-2 with ECA, paper.md's reference count
