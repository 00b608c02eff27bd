"""Fault catalogue of ``landzoo export`` (docs/reliability.md): crafted, truncated and edited checkpoints, an output
that cannot be written, a full disk and SIGTERM while the files are written. Each is one line (or exit 143 for
SIGTERM), a non-zero exit, no code run from a data file, and no file in the output folder that looks finished.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import signal
from pathlib import Path

import pytest
import torch
from export_helpers import save_trained_like

from _faults import cli_error_line, copy_tree, forked_landzoo

pytestmark = pytest.mark.slow

NAME, KWARGS = "mixer_tiny_p12_120", {}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = save_trained_like(tmp_path_factory.mktemp("ckpt"), NAME, KWARGS)
    return path.parent


def _left(folder: Path) -> list[str]:
    """What an export left in ``folder``: any file at all (a failed export writes nothing that looks finished)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class _Payload:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_ckpt_runs_no_code(tmp_path: Path) -> None:
    """export reads safetensors and JSON only: a pickled ``.ckpt`` (given itself, or as a run folder's only
    checkpoint) is never unpickled, and the line says what export needs."""
    marker, run = tmp_path / "pwned", tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    evil = run / "checkpoints" / "best.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"payload": _Payload(marker)}}, evil)
    assert pickle.dumps(_Payload(marker))  # the payload is real
    for given in (evil, run):
        out = tmp_path / f"out-{given.name}"
        line = cli_error_line(forked_landzoo("export", str(given), "--out", str(out)), "export")
        assert f"checkpoint {given} is a training checkpoint (.ckpt) or an unfinished run folder" in line, line
        assert _left(out) == []
    assert not marker.exists()


@pytest.mark.parametrize("cut", [0, 100, -10])
def test_a_truncated_weights_file_is_one_line(checkpoint: Path, tmp_path: Path, cut: int) -> None:
    ckpt = copy_tree(checkpoint, tmp_path / "ckpt")
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:cut])  # empty, inside the header, the last bytes missing
    out = tmp_path / "out"
    line = cli_error_line(forked_landzoo("export", str(weights), "--out", str(out)), "export")
    assert "model.safetensors" in line, line
    assert _left(out) == []


def test_an_edited_sidecar_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    ckpt = copy_tree(checkpoint, tmp_path / "ckpt")
    side = json.loads((ckpt / "model.json").read_text())
    side["contract"]["stats"]["B04"]["mean"] *= 1.5
    (ckpt / "model.json").write_text(json.dumps(side, indent=2))
    out = tmp_path / "out"
    line = cli_error_line(forked_landzoo("export", str(ckpt / "model.safetensors"), "--out", str(out)), "export")
    assert "model.json was edited or damaged" in line, line
    assert _left(out) == []


def test_an_output_that_is_a_file_is_refused_before_work(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    line = cli_error_line(forked_landzoo("export", str(checkpoint / "model.safetensors"), "--out", str(out)), "export")
    assert str(out) in line and "not a folder" in line, line
    assert out.read_text() == "not a folder"


def test_a_full_disk_while_writing_is_one_line_naming_the_file(checkpoint: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the weights write fail with EFBIG (SIGXFSZ ignored), as a full disk fails with ENOSPC."""

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "out"
    proc = forked_landzoo("export", str(checkpoint / "model.safetensors"), "--out", str(out), preexec=small_files)
    line = cli_error_line(proc, "export")
    assert proc.returncode == 1 and line.startswith("landzoo export: error: file too large: "), line
    assert str(out) in line
    assert not [n for n in _left(out) if n.endswith(".tmp") or n.startswith("model.")]  # nothing half-written


def test_sigterm_while_a_graph_is_written_then_the_rerun_finishes(checkpoint: Path, tmp_path: Path) -> None:
    """SIGTERM in the middle of the ONNX export: exit 143, no temporary file left and no model.onnx; the same
    command with --overwrite then writes the folder and a graph that passes its parity check."""

    def terminate_in_onnx() -> None:
        from landzoo.export import graphs

        write = graphs._WRITERS["onnx"]

        def interrupted(tracing, path):
            write(tracing, path)
            os.kill(os.getpid(), signal.SIGTERM)

        graphs._WRITERS["onnx"] = interrupted

    out = tmp_path / "out"
    args = ("export", str(checkpoint / "model.safetensors"), "--out", str(out), "--format", "onnx")
    proc = forked_landzoo(*args, preexec=terminate_in_onnx)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "run it again with --overwrite" in proc.stderr, proc.stderr[-2000:]
    assert "model.onnx" not in _left(out) and not [n for n in _left(out) if n.endswith(".tmp")]
    done = forked_landzoo(*args, "--overwrite")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"model.safetensors", "config.json", "model.onnx"} <= set(_left(out))
    assert "max |onnx - PyTorch| = " in done.stdout
