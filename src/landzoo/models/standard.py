"""The paper's standard architectures, built by timm (never rewritten here), at 120 px as in the paper.

The reference built them with ``keras.applications`` (``weights=None, include_top=False, pooling="avg"``)
and a Dense head. The timm networks are the same architectures; trainable counts with 10 bands and 19
classes, timm vs Keras (``docs/models.md`` explains each line):

* DenseNet121/169/201, EfficientNet B0..B7: equal.
* ResNet50/101/152: timm has no conv biases (each conv is followed by BN); Keras does. The difference is
  exactly the number of conv output channels (ResNet50: 23,568,915 + 26,560 = 23,595,475).
* VGG16/19: timm's head is a 7x7 conv to 4096 + 1x1 conv (``ConvMlp``, ~119 M parameters, the 3x3 map
  up-pooled to 7x7 at 120 px). The paper's is global average pooling + Dense. The catalogue's ``vgg16``/
  ``vgg19`` therefore use timm's feature extractor with the Keras head, registered in timm as
  ``vgg16_gap``/``vgg19_gap``; their counts equal Keras' (14,728,467 / 20,038,163).

``pretrained=True`` is refused unless the weights are given (a ``landzoo export`` folder or file): nothing is
ever downloaded. ``vgg16_gap``/``vgg19_gap`` load such weights themselves; the others are timm's own models.
"""

from __future__ import annotations

from typing import Any

import timm
from timm.layers import ClassifierHead
from timm.models import generate_default_cfgs, register_model
from torch import nn

from landzoo.models._catalogue import ModelError, ModelInfo, register_info
from landzoo.models._common import exported_args, load_pretrained_weights, pretrained_cfg_to_load, timm_cfg

__all__ = ["STANDARD_MODELS", "create_timm"]

#: catalogue name -> (family, timm name, reference Keras count with 10 bands and 19 classes or None)
STANDARD_MODELS: dict[str, tuple[str, str, int | None]] = {
    "resnet50": ("resnet", "resnet50", 23_595_475),
    "resnet101": ("resnet", "resnet101", 42_613_715),
    "resnet152": ("resnet", "resnet152", 58_280_403),
    "vgg16": ("vgg", "vgg16_gap", 14_728_467),
    "vgg19": ("vgg", "vgg19_gap", 20_038_163),
    "densenet121": ("densenet", "densenet121", 6_995_283),
    "densenet169": ("densenet", "densenet169", 12_538_067),
    "densenet201": ("densenet", "densenet201", 18_151_379),
    **{
        f"efficientnet_b{i}": ("efficientnet", f"efficientnet_b{i}", {0: 4_033_903, 4: 17_585_707}.get(i))
        for i in range(8)
    },
}
STANDARD_INPUT_SIZE = 120


def create_timm(
    timm_name: str, *, in_chans: int = 10, num_classes: int = 19, pretrained: bool = False, **kwargs: Any
) -> nn.Module:
    """``timm.create_model(timm_name, pretrained=False, in_chans=..., num_classes=...)``; weights are refused."""
    if pretrained:
        raise ModelError(f"{timm_name}: landzoo never downloads weights (pretrained=True is not available)")
    return timm.create_model(timm_name, pretrained=False, in_chans=in_chans, num_classes=num_classes, **kwargs)


def _vgg_gap(base: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """timm's VGG features with the Keras head: global average pool -> Linear (no 4096-wide ConvMlp).

    ``pretrained=True`` loads the weights of a ``landzoo export`` folder (``local-dir:``) or file (``file=``).
    """
    cfg_args = {k: kwargs.pop(k, None) for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")}
    kwargs.pop("pretrained_model_args", None)
    cfg = None
    if pretrained:
        cfg = pretrained_cfg_to_load(f"{base}_gap", cfg_args["pretrained_cfg"], cfg_args["pretrained_cfg_overlay"])
        kwargs = {**exported_args(f"{base}_gap", pretrained, cfg_args), **kwargs}
    kwargs.setdefault("in_chans", 10)
    kwargs.setdefault("num_classes", 19)
    # timm's ConvMlp (512 -> 4096 7x7 -> 4096) is replaced below; build it 1 channel wide so that it costs nothing.
    kwargs.setdefault("mlp_ratio", 1 / 4096)
    model = create_timm(base, **kwargs)
    num_classes = model.num_classes
    model.pre_logits = nn.Identity()
    model.head = ClassifierHead(model.num_features, num_classes, pool_type="avg", drop_rate=0.0)
    model.head_hidden_size = model.num_features
    if cfg is not None:
        load_pretrained_weights(model, cfg)
    return model


# timm's config entries (first conv, classifier, 10 bands and 19 classes at 120 px); no weights behind them
default_cfgs = generate_default_cfgs(
    {f"{v}_gap": timm_cfg(STANDARD_INPUT_SIZE, "features.0", "head.fc") for v in ("vgg16", "vgg19")}
)


@register_model
def vgg16_gap(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """VGG16 with the paper's (Keras ``include_top=False, pooling="avg"``) head."""
    return _vgg_gap("vgg16", pretrained, **kwargs)


@register_model
def vgg19_gap(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """VGG19 with the paper's (Keras ``include_top=False, pooling="avg"``) head."""
    return _vgg_gap("vgg19", pretrained, **kwargs)


for _name, (_family, _timm, _ref) in STANDARD_MODELS.items():
    register_info(
        ModelInfo(
            name=_name,
            family=_family,
            input_size=STANDARD_INPUT_SIZE,
            build=(lambda t: lambda **kw: create_timm(t, **kw))(_timm),
            timm_name=_timm,
            source="timm",
            reference_params=_ref,
            description=f"timm {_timm}" + (" (Keras head: GAP + Linear)" if _timm.endswith("_gap") else ""),
        )
    )
