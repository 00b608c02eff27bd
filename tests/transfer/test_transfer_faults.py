"""Fault catalogue of transfer (docs/reliability.md): SIGTERM and kill -9 at several points of a sweep, then
the same command ends with the numbers of an uninterrupted sweep; a damaged resume point and bad options are one
line naming the file or option."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from transfer_synth import random_checkpoint, sen12ms_store

from _faults import FaultAt, inject, one_line_error, run_script
from landzoo.cli import main
from landzoo.transfer import run as transfer_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("faults")
    return {"root": root, "store": sen12ms_store(root), "ckpt": random_checkpoint(root)}


def _argv(env: dict[str, Path], out: Path, mode: str = "finetune") -> list[str]:
    fast = ["--fractions", "0.5", "--seeds", "0,1", "--epochs", "2", "--min-steps", "0", "--batch-size", "32"]
    if mode == "linear":
        fast = ["--fractions", "0.5", "--seeds", "0", "--epochs", "4", "--min-steps", "0", "--batch-size", "32"]
    return ["transfer", "--from", str(env["ckpt"]), "--dataset", "sen12ms", "--data", str(env["store"]),
            "--out", str(out), "--inits", "random", "--mode", mode, "--workers", "0", "--no-progress", *fast]  # fmt: skip


def _numbers(out: Path) -> list[dict]:
    """What an interruption must not change: every run's test metrics, selected epoch and steps."""
    runs = json.loads((out / "transfer.json").read_text())["runs"]
    return [{"run": (r["init"], r["fraction"], r["seed"]), **r["test"], "epoch": r["val"]["epoch"],
             "steps": r["cost"]["steps"]} for r in runs]  # fmt: skip


@pytest.fixture(scope="module")
def reference(env: dict[str, Path]) -> list[dict]:
    out = env["root"] / "reference"
    assert main(_argv(env, out)) == 0
    return _numbers(out)


def test_sigterm_in_the_second_run_stops_the_sweep_then_the_rerun_finishes_it(
    env: dict[str, Path], reference: list[dict], tmp_path: Path, monkeypatch, capsys
) -> None:
    inject(monkeypatch, transfer_run, lambda label: [FaultAt("on_train_batch_end", 3)] if "seed=1" in label else [])
    assert main(_argv(env, tmp_path)) == 143
    out = capsys.readouterr().out
    assert "transfer stopped by SIGTERM during random/f0.5_s1" in out and "run the same command again" in out
    assert (tmp_path / "runs" / "random" / "f0.5_s0" / "result.json").is_file()
    assert (tmp_path / "runs" / "random" / "f0.5_s1" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "transfer.json").exists()
    monkeypatch.undo()
    assert main(_argv(env, tmp_path)) == 0
    assert "seed=1: resuming" in capsys.readouterr().out
    assert _numbers(tmp_path) == reference
    assert not (tmp_path / "runs" / "random" / "f0.5_s1" / "checkpoints").exists()  # removed once finished


def test_kill_9_between_two_runs_then_the_rerun_finishes_the_sweep(
    env: dict[str, Path], reference: list[dict], tmp_path: Path
) -> None:
    """(kill -9 inside a run's training: the linear-probe test below and tests/training/test_resume.py.)"""
    script = f"""
import os, signal
from landzoo.cli import main
from landzoo.transfer import run

original = run.train_and_test
calls = []
def train_and_test(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the first run's result.json is written: die before the second starts
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
run.train_and_test = train_and_test
main({_argv(env, tmp_path)!r})
"""
    proc = run_script(script)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "random" / "f0.5_s0" / "result.json").is_file()
    assert main(_argv(env, tmp_path)) == 0
    assert _numbers(tmp_path) == reference


def test_kill_9_during_a_linear_probe_then_the_rerun_gives_its_numbers(env: dict[str, Path], tmp_path: Path) -> None:
    assert main(_argv(env, tmp_path / "ref", "linear")) == 0
    proc = run_script(
        f"""
        import signal
        from _faults import FaultAt, SetAttr, inject
        from landzoo.cli import main
        from landzoo.transfer import run

        inject(SetAttr(), run, lambda label: [FaultAt("on_train_epoch_start", 3, sig=signal.SIGKILL)])
        main({_argv(env, tmp_path / "killed", "linear")!r})
        """
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (tmp_path / "killed" / "runs" / "random" / "f0.5_s0" / "checkpoints" / "last.ckpt").is_file()
    assert main(_argv(env, tmp_path / "killed", "linear")) == 0
    assert _numbers(tmp_path / "killed") == _numbers(tmp_path / "ref")


def test_a_truncated_resume_point_is_one_line(env: dict[str, Path], tmp_path: Path, monkeypatch, capsys) -> None:
    inject(monkeypatch, transfer_run, lambda label: [FaultAt("on_train_epoch_start", 2)])
    assert main(_argv(env, tmp_path)) == 143
    monkeypatch.undo()
    last = tmp_path / "runs" / "random" / "f0.5_s0" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    capsys.readouterr()
    err = one_line_error(capsys, main(_argv(env, tmp_path)))
    assert str(last) in err and "truncated or damaged" in err


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--batch-size", "-1"], "batch_size must be at least 1"),
        (["--eval-batch-size", "0"], "eval_batch_size must be at least 1"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--devices", "0"], "devices must be at least 1"),
        (["--workers", "-1"], "workers must be >= 0"),
        (["--val-every", "0"], "val_every must be at least 1"),
        (["--min-steps", "-5"], "min_steps"),
        (["--lr", "-0.1"], "lr > 0"),
        (["--device", "cuda:1"], "CUDA_VISIBLE_DEVICES=1"),
        (["--precision", "fp8"], "--precision must be one of"),
        (["--seeds", "0,x"], "--seeds"),
    ],
)
def test_bad_options_are_one_line(env: dict[str, Path], tmp_path: Path, capsys, extra: list[str], needle: str) -> None:
    err = one_line_error(capsys, main([*_argv(env, tmp_path / "o"), *extra]))
    assert needle in err, err
    assert not (tmp_path / "o").exists()


def test_malformed_statistics_file_is_one_line(env: dict[str, Path], tmp_path: Path, capsys) -> None:
    stats = tmp_path / "stats.json"
    stats.write_text('{"B02": [1, 2], "B03": "nonsense"')
    err = one_line_error(capsys, main([*_argv(env, tmp_path / "o"), "--stats", str(stats)]))
    assert str(stats) in err and "{band: [mean, std]}" in err
