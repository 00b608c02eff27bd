"""torch.export traces with fake tensors: the resampling matrices must not be cached from inside a trace."""

from __future__ import annotations

import torch
from torch import nn

from landzoo.transforms import resample, tf_bicubic_matrix


class _Resize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resample(x, 37)  # a size no other test uses, so the cache is empty when the trace runs


def test_export_first_then_eager_use_of_the_same_size() -> None:
    x = torch.randn(2, 3, 23, 23)
    program = torch.export.export(_Resize(), (x,))
    eager = resample(x, 37)  # after the trace: must be a real tensor computed from real matrices
    assert type(eager) is torch.Tensor
    m = tf_bicubic_matrix(23, 37)
    torch.testing.assert_close(eager, m @ x @ m.T)
    torch.testing.assert_close(program.module()(x), eager)
