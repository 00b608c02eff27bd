"""Project-wide test setup: single-threaded PyTorch and the ``shared`` fixture.

On this small shared 2-core machine, intra-op threads waiting on each other made a batch-of-2 forward
pass of a small CNN take seconds instead of milliseconds (measured: ~50x); the tiny batches of the
tests need one thread. It is set once for the whole session (not per test) so that session- and
module-scoped fixtures train with the same float summation order as the tests that compare with them;
subprocesses get ``OMP_NUM_THREADS=1`` for the same reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from _fixtures import shared_fixture

os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture
def shared() -> Path:
    """The ../shared/fixtures folder (skips when absent)."""
    return shared_fixture()
