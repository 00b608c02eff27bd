"""Helpers of the fault catalogue (docs/reliability.md): fault injection into training runs, and the CLI run
as a user runs it.

Fault injection: a signal or an exception at a chosen point of a training run.

The points are Lightning hooks, counted per run, so a fault lands exactly where the test says (the 3rd training
step of the 2nd model, the 1st validation batch, the test pass) instead of after a guessed sleep. Callbacks
reach a run through the engine's ``callbacks`` argument: :func:`inject` wraps ``train_and_test`` where a driver
(``fit``, the transfer sweep) looks it up, for the runs whose label matches. SIGKILL ends the process, so those
tests run the command in a subprocess through :func:`run_script`.

The CLI: :func:`run_landzoo` (a fresh interpreter) and :func:`forked_landzoo` (a forked child of the test
process, without paying the start-up again), :func:`cli_error_line` (asserts one line on stderr, no traceback).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
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


# ---- the CLI as a user runs it (the store, checkpoint and command-line faults of tests/faults) ----------
#: A small zoo model (a few hundred thousand parameters, 120 px input, no BatchNorm).
MODEL = "mixer_tiny_p12_120"


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def run_landzoo(*args: str, timeout: float = 120, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``python -m landzoo ARGS`` as a user runs it (single-threaded like the tests); stdout and stderr apart."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "landzoo", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )


def cli_error_line(proc: subprocess.CompletedProcess[str], command: str) -> str:
    """The single stderr line of a failed command (asserts: non-zero exit, no traceback, one line).

    Progress bars and Lightning's device banner (``INFO: GPU available: ...``, printed once per process, so in a
    forked child only when the test process has not printed it yet) are not error lines."""
    assert proc.returncode != 0, f"{command} succeeded: {proc.stdout[-500:]}"
    banner = ("INFO: GPU available", "INFO: TPU available", "INFO: HPU available")
    lines = [s for s in proc.stderr.splitlines() if s.strip() and "%|" not in s and not s.startswith(banner)]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith(f"landzoo {command}: error: "), lines[0]
    return lines[0]


def forked_landzoo(
    *args: str, preexec: Callable[[], None] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """The ``landzoo`` CLI run in a forked child of the test process, as :func:`run_landzoo` but without paying
    the interpreter and torch start-up again (seconds per call on the CI machine).

    The child runs ``landzoo.cli.main(args)`` with its own stdout/stderr files and exits with its status;
    ``preexec`` runs first (e.g. to set a resource limit). A child still running after ``timeout`` seconds is
    killed and the test fails: a hang is a defect.
    """
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 70
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
                if preexec is not None:
                    preexec()
                from landzoo.cli import main

                code = main(list(args))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline = time.monotonic() + timeout
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"landzoo {' '.join(args)} still ran after {timeout} s: a hang")
            time.sleep(0.01)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(list(args), os.waitstatus_to_exitcode(status), out.read(), err.read())
