"""Fault injection for the fault-catalogue tests: a signal or an exception at a chosen point of a training run.

The points are Lightning hooks, counted per run, so a fault lands exactly where the test says (the 3rd training
step of the 2nd model, the 1st validation batch, the test pass) instead of after a guessed sleep. Callbacks
reach a run through the engine's ``callbacks`` argument: :func:`inject` wraps ``train_and_test`` where a driver
(``fit``, the transfer sweep) looks it up, for the runs whose label matches. SIGKILL ends the process, so those
tests run the command in a subprocess through :func:`run_script`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L

REPO = Path(__file__).resolve().parents[1]


class FaultAt(L.Callback):
    """At the ``count``-th call of ``hook`` (1-based, this run only): send ``sig`` to this process or raise ``error``."""

    def __init__(self, hook: str, count: int = 1, *, sig: int | None = None, error: BaseException | None = None):
        self.hook, self.count, self.sig, self.error = hook, count, sig, error
        self.calls = 0

        def fire(*_: Any, **__: Any) -> None:
            self.calls += 1
            if self.calls != self.count:
                return
            if self.error is not None:
                raise self.error
            os.kill(os.getpid(), self.sig or signal.SIGTERM)

        setattr(self, hook, fire)


def inject(monkeypatch: Any, module: Any, make: Callable[[str], list[L.Callback]]) -> None:
    """Make ``module.train_and_test`` add ``make(label)`` to the callbacks of every run (``[]``: none)."""
    original = module.train_and_test

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        label = kwargs.get("label") or ""
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), *make(label)]
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "train_and_test", wrapped)


class SetAttr:
    """The part of pytest's ``monkeypatch`` that :func:`inject` uses, for scripts run by :func:`run_script`."""

    def setattr(self, obj: Any, name: str, value: Any) -> None:
        setattr(obj, name, value)


def run_script(code: str, *, timeout: float = 600, **popen: Any) -> subprocess.CompletedProcess:
    """Run Python ``code`` in a fresh single-threaded interpreter from the repository root (what a job runs)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    prelude = "import torch\ntorch.set_num_threads(1)\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def one_line_error(capsys: Any, code: int, expected_code: int = 2) -> str:
    """The single stderr line of a command that failed with ``expected_code`` (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert code == expected_code, err
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]
