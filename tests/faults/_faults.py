"""Helpers of the fault catalogue (a module with a unique name, importable from its test files)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
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


def one_line_error(proc: subprocess.CompletedProcess[str], command: str) -> str:
    """The single stderr line of a failed command (asserts: non-zero exit, no traceback, one line)."""
    assert proc.returncode != 0, f"{command} succeeded: {proc.stdout[-500:]}"
    lines = [line for line in proc.stderr.splitlines() if line.strip() and "%|" not in line]
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
