"""Every registered model runs forward and backward at its input resolution with the right output shape.

Two tiers keep this file within about a minute on a 2-core CPU:

* every model but five runs a real forward + backward on a batch of 2 at its input size: outputs [2, 19],
  finite, every parameter receives a finite gradient;
* the five biggest compound-scaled variants (wrn_eca_b5..b7: 17-91 GMACs per image; efficientnet_eca_b6/b7)
  run the same forward + backward on PyTorch's ``meta`` device: shapes and the autograd graph (every
  parameter reached) are checked in the fast tier; the slow tier runs them for real too (about a minute).
"""

from __future__ import annotations

import pytest
import torch

from landzoo.models import build_backbone, list_models

# Measured on the 2-core CPU, one thread: wrn_eca_b5..b7 take 4-25 s, efficientnet_eca_b6/b7 6-8 s.
HEAVY = {"wrn_eca_b5", "wrn_eca_b6", "wrn_eca_b7", "efficientnet_eca_b6", "efficientnet_eca_b7"}
# 2-4 s each
SLOW = {"wrn_eca_b4", "efficientnet_eca_b4", "efficientnet_eca_b5", "efficientnet_b7", "resnet152"}


def test_tiers_cover_the_catalogue() -> None:
    names = set(list_models())
    assert names >= HEAVY and names >= SLOW
    assert len(names) >= 58


def _real(name: str) -> None:
    torch.manual_seed(0)
    model, size = build_backbone(name)
    model.train()
    x = torch.randn(2, 10, size, size)
    y = model(x)
    assert y.shape == (2, 19)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in list_models() if n not in HEAVY],
)
def test_forward_backward_cpu(name: str) -> None:
    _real(name)


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_forward_backward_big_models_on_meta(name: str) -> None:
    with torch.device("meta"):
        model, size = build_backbone(name)
        y = model(torch.randn(2, 10, size, size))
        assert y.shape == (2, 19)
        y.sum().backward()
    missing = [k for k, p in model.named_parameters() if p.grad is None]
    assert not missing, f"{name}: no gradient reaches {missing[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(HEAVY))
def test_forward_backward_big_models_cpu(name: str) -> None:
    _real(name)


def test_eval_mode_is_deterministic_and_batch_independent() -> None:
    torch.manual_seed(0)
    model, size = build_backbone("wrn10_2_eca")
    model.eval()
    x = torch.randn(3, 10, size, size)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-5, atol=1e-5)
