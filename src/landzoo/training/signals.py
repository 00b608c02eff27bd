"""SIGTERM as a request to stop at the next safe point, for commands that run several trainings in a row.

Inside a training, Lightning's handler records the request here too (the engine routes it,
:func:`landzoo.training.callbacks.route_sigterm`) and :class:`landzoo.training.callbacks.PreemptionCheckpoint`
saves ``last.ckpt`` and stops the run at the next step end. Between trainings (a benchmark moving to its next model, a transfer sweep to
its next run, a linear probe extracting features), :func:`sigterm_stops` keeps the process alive and records
the request; the drivers check :func:`stop_agreed` before each run and stop with a message that says how to
continue. Lightning calls the handler installed here too (it keeps existing handlers), so a request is never
lost between the two. Under DDP the ranks agree (any rank's request stops all), so none waits for the others.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

__all__ = ["request_stop", "sigterm_stops", "stop_agreed", "stop_requested", "stopped_message"]

_STOP = threading.Event()


def request_stop(*_: Any) -> None:
    """Record a stop request (the SIGTERM handler)."""
    _STOP.set()


def stop_requested() -> bool:
    """True once SIGTERM arrived in this process (inside or between trainings)."""
    return _STOP.is_set()


def stop_agreed(device: torch.device | str = "cpu") -> bool:
    """:func:`stop_requested` on any rank (all-reduced when a process group is up; call it on every rank)."""
    flag = stop_requested()
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        backend = dist.get_backend()
        dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        t = torch.tensor([1.0 if flag else 0.0], device=dev)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item() > 0)
    return flag


@contextmanager
def sigterm_stops() -> Iterator[None]:
    """Within the block, SIGTERM requests a stop instead of ending the process (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP.clear()
    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _STOP.clear()  # the request was for this command


def stopped_message(command: str, res: dict[str, Any]) -> str:
    """What a user reads when SIGTERM stopped a benchmark or transfer sweep: where it stopped, how to continue."""
    return (
        f"{command} stopped by SIGTERM during {res['model']}: its checkpoint is saved ({res['checkpoint']}); "
        "run the same command again to continue (finished runs are reused, the interrupted one resumes)"
    )
