"""Fault catalogue of training (docs/reliability.md): signals at several points of a run, exceptions in
callbacks, damaged and crafted checkpoints, a full disk and a read-only folder while checkpoints are written, and
malformed configs. Each fault ends in the exact outcome the catalogue states: a rerun identical to an uninterrupted
run, the exception itself, or one line naming the file or key and a non-zero exit."""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
from pathlib import Path

import pytest
import torch
from _train_helpers import MODEL, overrides, results, same_end

from _faults import FaultAt, inject, one_line_error, run_script
from landzoo.cli import main
from landzoo.training import run as run_mod

pytestmark = pytest.mark.slow

EXTRA = {"data.batch_size": 8, "trainer.checkpoint_every_n_steps": 2, "cost.measure": "false"}


def _fit(store: Path, out: Path, *flags: str) -> int:
    return main(["fit", "--no-progress", *flags, *overrides(store, out, **EXTRA)])


@pytest.fixture(scope="module")
def reference(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    assert _fit(store, out) == 0
    return out / MODEL


# ---- exceptions surface as themselves -----------------------------------------------------------------
@pytest.mark.parametrize("hook", ["on_train_batch_end", "on_validation_batch_end"])
def test_an_exception_in_a_callback_surfaces_as_itself(store: Path, tmp_path: Path, monkeypatch, hook: str) -> None:
    """With the progress bar on (its on_exception once raised TypeError over the real error)."""
    inject(monkeypatch, run_mod, lambda label: [FaultAt(hook, 2, error=ValueError("boom in a callback"))])
    from landzoo.training.config import load_config

    cfg = load_config(None, overrides(store, tmp_path, **EXTRA))
    with pytest.raises(ValueError, match="boom in a callback"):
        run_mod.fit(cfg, progress=True, label="x")


# ---- signals at several points of fit, then a rerun identical to an uninterrupted run -------------------
def test_sigterm_during_validation_waits_for_the_epoch_then_resume(
    store: Path, reference: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    inject(monkeypatch, run_mod, lambda label: [FaultAt("on_validation_batch_end", 1, sig=signal.SIGTERM)])
    assert _fit(store, tmp_path) == 143
    out = capsys.readouterr().out
    assert "SIGTERM: checkpoint saved" in out and "--resume" in out
    ckpt = torch.load(tmp_path / MODEL / "checkpoints" / "last.ckpt", weights_only=True)
    steps = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] // 2
    assert ckpt["global_step"] == steps and ckpt["epoch"] == 0  # end of epoch 1: validation was not cut short
    monkeypatch.undo()
    assert _fit(store, tmp_path, "--resume") == 0
    same_end(tmp_path / MODEL, reference)


def test_sigkill_during_the_test_pass_then_resume(store: Path, reference: Path, tmp_path: Path) -> None:
    args = ["fit", "--no-progress", *overrides(store, tmp_path, **EXTRA)]
    proc = run_script(
        f"""
        import signal
        from _faults import FaultAt, SetAttr, inject
        from landzoo.cli import main
        from landzoo.training import run

        inject(SetAttr(), run, lambda label: [FaultAt("on_test_batch_end", 1, sig=signal.SIGKILL)])
        main({args!r})
        """
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert not (tmp_path / MODEL / "results.json").exists()
    assert _fit(store, tmp_path, "--resume") == 0
    same_end(tmp_path / MODEL, reference)


# ---- damaged, edited and crafted checkpoints ------------------------------------------------------------
def test_resume_from_a_truncated_last_ckpt_is_one_line(store: Path, reference: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / MODEL
    shutil.copytree(reference, run)
    last = run / "checkpoints" / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    err = one_line_error(capsys, _fit(store, tmp_path, "--resume"))
    assert str(last) in err and "truncated or damaged" in err


class _Payload:
    """Unpickling this runs ``touch MARKER`` (what a crafted checkpoint does under weights_only=True)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_runs_no_code(store: Path, reference: Path, tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    state = torch.load(reference / "checkpoints" / "best.ckpt", weights_only=True)
    state["hyper_parameters"]["payload"] = _Payload(marker)
    torch.save(state, evil)
    assert pickle.dumps(_Payload(marker))  # the payload is real: plain pickle.loads would run it
    err = one_line_error(capsys, main(["test", str(evil), "--data", str(store)]))
    assert str(evil) in err and "refusing" in err and "system" in err
    # a run folder holding only checkpoints/best.ckpt is read the same way
    folder = tmp_path / "only-best"
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(evil, folder / "checkpoints" / "best.ckpt")
    err = one_line_error(capsys, main(["predict", str(folder), "--data", str(store), "--out", str(tmp_path / "p.csv")]))
    assert "best.ckpt" in err and "refusing" in err
    assert not marker.exists()


def test_a_run_folder_with_only_best_ckpt_evaluates_like_the_run(
    store: Path, reference: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "only-best"
    (folder / "checkpoints").mkdir(parents=True)
    shutil.copy(reference / "checkpoints" / "best.ckpt", folder / "checkpoints" / "best.ckpt")
    out = tmp_path / "t.json"
    assert main(["test", str(folder), "--data", str(store), "--out", str(out)]) == 0
    got = json.loads(out.read_text())["metrics"]
    assert got["f1_macro"] == pytest.approx(results(reference)["test"]["f1_macro"], abs=1e-6)


def test_hand_edited_and_foreign_checkpoints_are_one_line(store: Path, reference: Path, tmp_path: Path, capsys) -> None:
    state = torch.load(reference / "checkpoints" / "best.ckpt", weights_only=True)
    bands = state["landzoo"]["contract"]["bands"]
    bands[0], bands[1] = bands[1], bands[0]
    edited = tmp_path / "edited.ckpt"
    torch.save(state, edited)
    err = one_line_error(capsys, main(["test", str(edited), "--data", str(store)]))
    assert str(edited) in err and "bands" in err
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": state["state_dict"]}, foreign)
    err = one_line_error(capsys, main(["test", str(foreign), "--data", str(store)]))
    assert "not a landzoo training checkpoint" in err
    noise = tmp_path / "noise.ckpt"
    noise.write_bytes(os.urandom(4096))
    err = one_line_error(capsys, main(["test", str(noise), "--data", str(store)]))
    assert str(noise) in err and "damaged" in err
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    assert str(empty) in one_line_error(capsys, main(["test", str(empty), "--data", str(store)]))


# ---- a full disk and a read-only folder while checkpoints are written ------------------------------------
def test_a_full_disk_while_writing_a_checkpoint_is_one_line_naming_it(store: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the checkpoint write fail with EFBIG (SIGXFSZ ignored), as a full disk fails with ENOSPC."""
    args = ["fit", "--no-progress", *overrides(store, tmp_path, **EXTRA)]
    proc = run_script(
        f"""
        import resource, signal, sys
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600_000, 600_000))  # config.yaml fits, a 1.6 MB .ckpt does not
        from landzoo.cli import main
        sys.exit(main({args!r}))
        """
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    err = [line for line in proc.stderr.strip().splitlines() if not line.startswith(("GPU available", "TPU available"))]
    assert len(err) == 1, err
    assert err[0].startswith("landzoo fit: error: file too large: ") and err[0].endswith(".ckpt")
    assert str(tmp_path / MODEL / "checkpoints") in err[0]
    assert not list((tmp_path / MODEL / "checkpoints").glob("*.tmp"))  # no half-written file left


def test_a_read_only_file_system_while_writing_a_checkpoint_is_one_line(
    store: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from landzoo.training import checkpoint_io

    def refuse(*_, **__):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(checkpoint_io, "_write", refuse)
    err = one_line_error(capsys, _fit(store, tmp_path), expected_code=1)
    assert err.startswith("landzoo fit: error: read-only file system: ") and err.endswith(".ckpt")


def test_the_run_folder_is_checked_before_training(store: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / MODEL).write_text("a file where the run folder goes")
    err = one_line_error(capsys, _fit(store, tmp_path), expected_code=1)
    assert str(tmp_path / MODEL) in err and "not a folder" in err
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs an ordinary user
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        err = one_line_error(capsys, _fit(store, ro), expected_code=1)
        assert "permission denied" in err and str(ro) in err


# ---- malformed configs ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "override", "needles"),
    [
        ("model: [unclosed\n", None, ("not valid YAML", "line 2", "expected")),
        ("- a\n- list\n", None, ("must hold a mapping", "list")),
        (b"trainer:\n  epochs: \xff\xfe\n", None, ("not UTF-8",)),
        ("trainer:\n  epoch: 3\n", None, ("unknown config key 'trainer.epoch'", "epochs")),
        ("trainer:\n  epochs: two\n", None, ("trainer.epochs must be an integer",)),
        ("data:\n  batch_size: [8]\n", None, ("data.batch_size must be an integer",)),
        ("{}\n", "data.batch_size=-8", ("data.batch_size must be at least 1", "-8")),
        ("{}\n", "data.eval_batch_size=0", ("data.eval_batch_size must be at least 1",)),
        ("{}\n", "data.num_workers=-1", ("data.num_workers must be >= 0",)),
        ("{}\n", "trainer.devices=-2", ("trainer.devices must be at least 1",)),
        ("{}\n", "cost.warmup_batches=-1", ("cost.warmup_batches must be >= 0",)),
        ("{}\n", "optim.weight_decay=-0.1", ("optim.weight_decay must be >= 0",)),
        ("{}\n", "trainer.logger=comet", ("trainer.logger", "csv, tensorboard")),
    ],
)
def test_malformed_configs_are_one_line(store: Path, tmp_path: Path, capsys, text, override, needles) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    bench = ["benchmark", "--models", MODEL, "--data", str(store), "--out", str(tmp_path / "b")]
    for command in (["fit", "--print-config"], bench):
        argv = [*command, "--config", str(path), *([override] if override else [])]
        err = one_line_error(capsys, main(argv))
        assert all(n in err for n in needles), err
    assert not (tmp_path / "b").exists()  # refused before any output folder was made
    err = one_line_error(capsys, main(["fit", "--config", str(tmp_path), "--print-config"]))
    assert "is a folder" in err
