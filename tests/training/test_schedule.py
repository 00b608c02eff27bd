"""The lr schedules against torch's own schedulers (independent implementations of the same rule)."""

from __future__ import annotations

import math

import pytest
import torch

from landzoo.training.config import load_config
from landzoo.training.module import lr_factor_fn


def _torch_lrs(sched_fn, steps: int) -> list[float]:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = sched_fn(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_paper_step_decay_is_x01_from_epoch_27_of_30() -> None:
    cfg = load_config(None, [])  # paper protocol
    spe = 7
    f = lr_factor_fn(cfg, spe, 30 * spe)
    ours = [f(s) for s in range(30 * spe)]
    # torch MultiStepLR stepped once per epoch, repeated for each step of that epoch
    per_epoch = _torch_lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[27], gamma=0.1), 30)
    ref = [lr for lr in per_epoch for _ in range(spe)]
    assert ours == pytest.approx(ref)
    assert ours[27 * spe - 1] == 1.0 and ours[27 * spe] == pytest.approx(0.1)


def test_cosine_with_warmup_matches_torch() -> None:
    cfg = load_config(
        None, ["protocol=modern", "trainer.epochs=10", "schedule.warmup_epochs=2", "schedule.min_lr_ratio=0.05"]
    )
    spe, total = 5, 50
    f = lr_factor_fn(cfg, spe, total)
    warm = 10
    ours = [f(s) for s in range(total)]
    assert ours[:warm] == pytest.approx([(s + 1) / warm for s in range(warm)])
    ref = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total - warm, eta_min=0.05), total - warm
    )
    assert ours[warm:] == pytest.approx(ref)
    assert min(ours[warm:]) >= 0.05 - 1e-12 and ours[warm] == pytest.approx(1.0)


def test_constant_and_multiple_milestones() -> None:
    cfg = load_config(None, ["schedule.decay_at=[0.5, 0.75]", "trainer.epochs=8", "schedule.gamma=0.5"])
    f = lr_factor_fn(cfg, 1, 8)
    assert [f(s) for s in range(8)] == pytest.approx([1, 1, 1, 1, 0.5, 0.5, 0.25, 0.25])
    g = lr_factor_fn(load_config(None, ["schedule.name=constant"]), 3, 90)
    assert {g(s) for s in range(90)} == {1.0}
    assert math.isclose(lr_factor_fn(load_config(None, ["schedule.decay_at=[1.0]"]), 1, 30)(29), 1.0)
