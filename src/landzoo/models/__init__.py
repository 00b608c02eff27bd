"""The model zoo: every architecture of the paper by a lowercase systematic name, in timm's registry and ours.

Importing this package registers the paper's own architectures in timm (``timm.create_model("wrn_eca_b0",
in_chans=10, num_classes=19)``) and every architecture in landzoo's catalogue (family, input resolution,
band selection, scaling coefficients). ``import landzoo`` imports this module, so the names are in timm.

* Own architectures (written here; timm lacks them): ``wrn10_2[_eca|_se|_cbam|_coord][_ghost]``,
  ``wrn_eca_b0..b7``, ``efficientnet_eca_b0..b7`` and ``efficientnet_{plain,se,cbam,coord}_b0[_ghost]``
  (the paper's custom EfficientNet), ``vit_p{6,12,20,30,40}_120``, ``mixer_p12_120``, ``mixer_tiny_p12_120``.
* Standard architectures, built by timm: ``resnet50/101/152``, ``vgg16/19`` (with the paper's GAP head),
  ``densenet121/169/201``, ``efficientnet_b0..b7``.

:func:`create_model` is the landzoo entry point: it returns a :class:`LandCoverModel` (backbone + input
stem that knows its bands, classes and input size). Networks output logits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from landzoo import contract, scaling
from landzoo.models import efficientnet_eca, mixer, standard, vit, wrn  # noqa: F401  (registration)
from landzoo.models._catalogue import (
    CATALOGUE,
    DEFAULT_BANDS,
    DEFAULT_CLASSES,
    ModelError,
    ModelInfo,
    get_model_info,
    list_models,
)
from landzoo.models.attention import CBAM, ECA, SE, CoordAttention, GhostConv, eca_kernel_size
from landzoo.models.efficientnet_eca import EfficientNetECA
from landzoo.models.mixer import PaperMixer
from landzoo.models.vit import PaperViT
from landzoo.models.wrapper import LandCoverModel, resolve_classes
from landzoo.models.wrn import WideResNet

__all__ = [
    "CBAM",
    "DEFAULT_BANDS",
    "DEFAULT_CLASSES",
    "ECA",
    "SE",
    "CoordAttention",
    "EfficientNetECA",
    "GhostConv",
    "LandCoverModel",
    "ModelError",
    "ModelInfo",
    "PaperMixer",
    "PaperViT",
    "WideResNet",
    "build_backbone",
    "build_scaled",
    "catalogue",
    "count_macs",
    "count_params",
    "create_model",
    "eca_kernel_size",
    "get_model_info",
    "list_models",
    "resolve_classes",
]

count_params = scaling.count_params
count_macs = scaling.count_macs


def catalogue() -> dict[str, ModelInfo]:
    """Every registered name -> its :class:`ModelInfo` (own families first, then timm's)."""
    return {name: CATALOGUE[name] for name in list_models()}


def build_backbone(
    name: str, *, in_chans: int = 10, num_classes: int = 19, input_size: int | None = None, **options: Any
) -> tuple[nn.Module, int]:
    """The bare network of ``name`` and the input size it expects (``input_size`` overrides the catalogue's)."""
    info = get_model_info(name)
    if options.pop("pretrained", False):
        raise ModelError(f"{name}: landzoo never downloads weights (pretrained=True is not available)")
    if input_size is not None:
        input_size = int(input_size)
        if info.source == "landzoo":
            options["img_size"] = input_size
    try:
        backbone = info.build(in_chans=in_chans, num_classes=num_classes, **options)
    except TypeError as err:  # an option the (timm) constructor does not take
        raise ModelError(f"{name}: {err}") from None
    size = input_size or getattr(backbone, "img_size", None) or info.input_size
    if isinstance(size, tuple | list):
        size = size[-1]
    return backbone, int(size)


def create_model(
    name: str,
    bands: str | Sequence[str] = DEFAULT_BANDS,
    classes: str | Sequence[str] = DEFAULT_CLASSES,
    *,
    input_size: int | None = None,
    native: bool = True,
    stats: Mapping[str, tuple[float, float]] | None = None,
    resample: str = "bicubic",
    **options: Any,
) -> LandCoverModel:
    """Build zoo model ``name`` for ``bands`` (selection name or band names) and ``classes`` (class-set name or names).

    ``options`` go to the architecture (e.g. ``attention="se"``, ``pool="global"``, ``bn_momentum=0.9`` for
    the WRN; ``drop_rate`` for timm models). ``input_size`` changes the resolution where the architecture
    allows it. An unknown name raises :class:`ModelError` listing the closest names.
    """
    info = get_model_info(name)
    band_names = contract.resolve_bands(bands)
    class_names = resolve_classes(classes)
    backbone, size = build_backbone(
        name, in_chans=len(band_names), num_classes=len(class_names), input_size=input_size, **options
    )
    return LandCoverModel(
        backbone,
        band_names,
        size,
        classes,
        name=info.name,
        native=native,
        stats=stats,
        resample=resample,
    )


def build_scaled(
    family: str, coefficients: scaling.Coefficients, *, in_chans: int = 10, num_classes: int = 19, **options: Any
) -> tuple[nn.Module, int]:
    """A compound-scaled network of ``family`` (``"wrn_eca"`` or ``"efficientnet_eca"``) and its input size."""
    c = coefficients
    size = scaling.scaled_resolution(c.resolution)
    if family == "wrn_eca":
        options.setdefault("attention", "eca")
        model: nn.Module = WideResNet.from_multipliers(
            c.depth, c.width, c.resolution, in_chans=in_chans, num_classes=num_classes, **options
        )
    elif family == "efficientnet_eca":
        options.setdefault("attention", "eca")
        model = EfficientNetECA(
            in_chans, num_classes, depth_multiplier=c.depth, width_multiplier=c.width, img_size=size, **options
        )
    else:
        raise ModelError(f"no compound-scaled family {family!r}; choose wrn_eca or efficientnet_eca")
    return model, size
