"""Fault catalogue of the benchmark and the demo (docs/reliability.md): SIGTERM while a model trains,
kill -9 between two models, an exception inside a run. SIGTERM stops the whole benchmark with a message saying
how to continue, and the same command then resumes the interrupted model, reuses the finished ones and ends with
the leaderboard of an uninterrupted benchmark; an exception is reported as itself and the other models still run."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest
from _train_helpers import MODEL, overrides

from _faults import FaultAt, inject, run_script
from landzoo.cli import main
from landzoo.training import run as run_mod

pytestmark = pytest.mark.slow

#: columns that must be identical after an interruption (timings are not: they measure this process)
SAME = ("rank", "model", "status", "params", "f1_macro", "f1_micro", "map_macro", "best_epoch", "val_select", "epochs")


def _argv(store: Path, out: Path) -> list[str]:
    extra = {"data.batch_size": 8, "trainer.checkpoint_every_n_steps": 2, "cost.measure": "false"}
    skip = ("data.store=", "out=", "trainer.epochs=")
    return [
        "benchmark", "--models", f"{MODEL},small={MODEL}", "--model-kwargs", '{"small": {"hidden_dim": 32}}',
        "--data", str(store), "--epochs", "2", "--out", str(out), "--no-progress",
        *[o for o in overrides(store, out, **extra)[1:] if not o.startswith(skip)],
    ]  # fmt: skip


def _board(out: Path) -> list[dict]:
    rows = json.loads((out / "leaderboard.json").read_text())["rows"]
    return [{k: r[k] for k in SAME} for r in rows]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(str(record.msg))


BANNERS = _Records()


@pytest.fixture(scope="module")
def reference(store: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    from landzoo.training import trainer

    out = tmp_path_factory.mktemp("bench-ref")
    trainer._CONSOLE.seen.clear()  # as in a fresh process: the banner is due once
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    log.addHandler(BANNERS)
    try:
        assert main(_argv(store, out)) == 0
    finally:
        log.removeHandler(BANNERS)
    return _board(out)


def test_lightnings_device_banner_is_shown_once_per_process(reference: list[dict]) -> None:
    """Two models trained and tested in one benchmark process: one "GPU available" banner, not one per Trainer."""
    assert len(reference) == 2
    assert sum(m.startswith("GPU available") for m in BANNERS.messages) == 1


def test_sigterm_in_the_second_model_stops_the_benchmark_then_the_rerun_finishes_it(
    store: Path, reference: list[dict], tmp_path: Path, monkeypatch, capsys
) -> None:
    inject(monkeypatch, run_mod, lambda label: [FaultAt("on_train_batch_end", 3)] if "small" in label else [])
    assert main(_argv(store, tmp_path)) == 143
    out = capsys.readouterr().out
    assert "benchmark stopped by SIGTERM during small" in out and "run the same command again" in out
    assert not (tmp_path / "leaderboard.json").exists()  # no leaderboard for a partial benchmark
    assert (tmp_path / "runs" / "small" / "checkpoints" / "last.ckpt").is_file()
    monkeypatch.undo()
    assert main(_argv(store, tmp_path)) == 0
    out = capsys.readouterr().out
    assert f"{MODEL}: finished earlier" in out and "small: resuming" in out
    assert _board(tmp_path) == reference


def test_kill_between_two_models_then_the_rerun_finishes_it(store: Path, reference: list[dict], tmp_path: Path) -> None:
    proc = run_script(
        f"""
        import os, signal
        from landzoo.cli import main
        from landzoo.training import run

        fit = run.fit
        def fit_then_die(cfg, **kw):
            result = fit(cfg, **kw)
            os.kill(os.getpid(), signal.SIGKILL)  # after the first model's results are written
        run.fit = fit_then_die
        main({_argv(store, tmp_path)!r})
        """
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert main(_argv(store, tmp_path)) == 0
    assert _board(tmp_path) == reference


def test_an_exception_inside_a_run_is_reported_as_itself(store: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    boom = ValueError("boom in the second epoch")
    inject(
        monkeypatch, run_mod, lambda label: [FaultAt("on_train_epoch_start", 2, error=boom)] if "small" in label else []
    )
    assert main(_argv(store, tmp_path)) == 1
    assert "small: FAILED: ValueError: boom in the second epoch" in capsys.readouterr().out
    rows = {r["model"]: r for r in json.loads((tmp_path / "leaderboard.json").read_text())["rows"]}
    assert rows["small"]["error"] == "ValueError: boom in the second epoch" and rows[MODEL]["status"] == "ok"


def test_sigterm_during_the_demo_then_the_rerun_continues(tmp_path: Path, monkeypatch, capsys) -> None:
    argv = ["demo", "--out", str(tmp_path), "--patches", "120", "--epochs", "1", "--models", "mixer_p12_120",
            "--no-progress"]  # fmt: skip
    inject(monkeypatch, run_mod, lambda label: [FaultAt("on_train_batch_end", 2)])
    assert main(argv) == 143
    assert "demo stopped by SIGTERM during mixer_p12_120" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "reusing the store" in out and "mixer_p12_120: resuming" in out and "best constant predictor" in out
