"""fit / test / predict on a tiny real store with a real zoo model; bad input gives one-line errors.

The metrics the engine reports are checked against scikit-learn on predictions written by ``landzoo
predict`` and labels read straight from the store's index (independent of the training code path).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from _train_helpers import MODEL, overrides, results
from sklearn.metrics import f1_score, precision_score

from landzoo.checkpoint import write_sidecar
from landzoo.cli import main
from landzoo.contract import BAND_SELECTIONS, BEN19
from landzoo.files import sealed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    assert main(["fit", "--no-progress", *overrides(store, out)]) == 0
    return out / MODEL


def _store_labels(store: Path, split: str) -> dict[str, np.ndarray]:
    t = pq.read_table(store / "index.parquet").to_pandas()
    t = t[t["split"] == split]
    return {pid: np.asarray(lab, dtype=int) for pid, lab in zip(t["id"], t["label"], strict=True)}


def test_results_record_metrics_cost_scaling_and_contract(run_dir: Path, store: Path) -> None:
    r = results(run_dir)
    assert r["status"] == "ok" and r["model"] == MODEL and r["family"] == "mixer"
    n_test = len(_store_labels(store, "test"))
    assert r["test_patches"] == n_test == r["test"]["num_samples"]
    assert 1 <= r["best_epoch"] <= 2 and r["val_select"] == r["val"]["f1_micro"]
    c = r["cost"]
    assert c["params"] == 136_955 and c["input_size"] == 120 and c["macs"] > 0
    assert c["epochs_timed"] == 2 and c["train_time_s"] > 0 and c["train_img_s"] > 0
    assert c["infer_img_s_model"] > 0 and c["infer_img_s_e2e"] > 0 and c["precision"] == "32-true"
    assert r["scaling"]["global_batch"] == 16 and r["scaling"]["world_size"] == 1
    assert r["env"]["hardware"] and r["env"]["torch"]
    assert r["baseline"]["f1_macro"] > 0
    assert r["contract"]["bands"] == list(BAND_SELECTIONS["s2_10m_20m"]) and r["contract"]["classes"] == list(BEN19)
    sidecar = json.loads((run_dir / "model.json").read_text())
    assert sidecar["contract"]["bands"] == list(BAND_SELECTIONS["s2_10m_20m"]) and sidecar["arch"] == MODEL
    assert sidecar["metrics"]["test"]["f1_macro"] == pytest.approx(r["test"]["f1_macro"])
    assert (run_dir / "checkpoints" / "last.ckpt").is_file() and (run_dir / "config.yaml").is_file()


def test_predict_then_sklearn_equals_reported_test_metrics(run_dir: Path, store: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred.parquet"
    assert main(["predict", str(run_dir), "--data", str(store), "--out", str(out)]) == 0
    df = pd.read_parquet(out)
    assert list(df.columns) == ["id", *BEN19]
    labels = _store_labels(store, "test")
    assert sorted(df["id"]) == sorted(labels)
    y = np.stack([labels[i] for i in df["id"]])
    p = (df[list(BEN19)].to_numpy() >= 0.5).astype(int)
    r = results(run_dir)["test"]
    assert r["f1_micro"] == pytest.approx(f1_score(y, p, average="micro", zero_division=0), abs=1e-6)
    assert r["f1_macro"] == pytest.approx(f1_score(y, p, average="macro", zero_division=0), abs=1e-6)
    assert r["precision_samples"] == pytest.approx(precision_score(y, p, average="samples", zero_division=0), abs=1e-6)
    # CSV too, same numbers
    csv = tmp_path / "pred.csv"
    assert main(["predict", str(run_dir / "model.safetensors"), "--data", str(store), "--out", str(csv)]) == 0
    np.testing.assert_allclose(pd.read_csv(csv)[list(BEN19)].to_numpy(), df[list(BEN19)].to_numpy(), atol=1e-6)


def test_landzoo_test_reproduces_the_run(run_dir: Path, store: Path, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    assert main(["test", str(run_dir), "--data", str(store), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    reported = results(run_dir)["test"]
    for key in ("f1_micro", "f1_macro", "map_macro", "hamming_loss", "paper_accuracy_micro"):
        assert res["metrics"][key] == pytest.approx(reported[key], abs=1e-6)
    # the Lightning checkpoint selected on validation gives the same weights as model.safetensors
    assert main(["test", str(run_dir / "checkpoints" / "best.ckpt"), "--data", str(store), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["metrics"]["f1_macro"] == pytest.approx(reported["f1_macro"], abs=1e-6)
    # validation split on request
    assert main(["test", str(run_dir), "--data", str(store), "--split", "val", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["split"] == "val"


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def test_bad_input_is_a_one_line_error(
    run_dir: Path, store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fit = ["fit", "--no-progress"]
    _one_line_error(
        capsys, [*fit, *overrides(store, tmp_path, **{"model.name": "resnet5"})], "unknown model 'resnet5'", "resnet50"
    )
    _one_line_error(
        capsys, [*fit, *overrides(store, tmp_path, **{"trainer.epoch": 1})], "unknown config key 'trainer.epoch'"
    )
    _one_line_error(capsys, [*fit, *overrides(tmp_path / "nowhere", tmp_path)], "does not exist")
    _one_line_error(capsys, [*fit, *overrides(store, tmp_path, **{"data.test_split": "holdout"})], "holdout")
    _one_line_error(capsys, [*fit, *overrides(store, run_dir.parent)], "already holds a run", "--resume")
    _one_line_error(capsys, ["test", str(tmp_path / "missing.ckpt"), "--data", str(store)], "does not exist")
    _one_line_error(
        capsys, ["predict", str(run_dir), "--data", str(store), "--out", str(tmp_path / "p.txt")], ".parquet or .csv"
    )


def test_checkpoint_and_store_contract_mismatches_are_refused(
    run_dir: Path, store: Path, raw_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from landzoo.store.encode import encode

    # a store without the 20 m bands: the checkpoint needs them
    rgb = tmp_path / "rgb"
    encode("bigearthnet-v1", raw_dir, rgb, bands="rgb", workers=1, progress=False)
    _one_line_error(capsys, ["test", str(run_dir), "--data", str(rgb)], "lacks band(s) B08", "B02,B03,B04,B08")
    _one_line_error(capsys, ["fit", "--no-progress", *overrides(rgb, tmp_path / "r")], "B08")
    # a store whose classes come in another order
    swapped = tmp_path / "swapped"
    shutil.copytree(store, swapped)
    manifest = json.loads((swapped / "manifest.json").read_text())
    c = manifest["classes"]
    c[0], c[1] = c[1], c[0]
    (swapped / "manifest.json").write_text(json.dumps(sealed(manifest)))  # sealed again: a consistent store
    _one_line_error(capsys, ["test", str(run_dir), "--data", str(swapped)], "Urban fabric")
    # a checkpoint whose sidecar claims another band order than its weights were saved with
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(run_dir / "model.safetensors", bad / "model.safetensors")
    side = json.loads((run_dir / "model.json").read_text())
    b = side["contract"]["bands"]
    b[0], b[2] = b[2], b[0]
    write_sidecar(bad / "model.json", side)  # sealed again: the weights header must still disagree
    _one_line_error(capsys, ["test", str(bad / "model.safetensors"), "--data", str(store)], "B04,B03,B02")


def test_benchmark_end_to_end(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    argv = [
        "benchmark", "--models", f"{MODEL},small={MODEL},broken={MODEL}", "--data", str(store), "--epochs", "1",
        "--out", str(out), "--no-progress", "--model-kwargs", '{"small": {"hidden_dim": 32}, "broken": {"no_such": 1}}',
        *[o for o in overrides(store, tmp_path)[1:] if not o.startswith(("data.store=", "out=", "trainer.epochs="))],
    ]  # fmt: skip
    assert main(argv) == 1  # one model failed
    printed = capsys.readouterr().out
    assert "best constant predictor" in printed and "broken failed" in printed
    board = json.loads((out / "leaderboard.json").read_text())
    rows = {r["model"]: r for r in board["rows"]}
    assert rows["broken"]["status"] == "failed" and "no_such" in rows["broken"]["error"]
    assert rows[MODEL]["status"] == rows["small"]["status"] == "ok"
    assert rows["small"]["params"] < rows[MODEL]["params"] and rows["small"]["arch"] == MODEL
    labels = np.stack(list(_store_labels(store, "test").values()))
    from landzoo.metrics import best_constant_baseline

    assert board["baseline"]["f1_macro"] == pytest.approx(best_constant_baseline(labels, BEN19)["f1_macro"])
    for name in (
        "leaderboard.csv",
        "leaderboard.md",
        "report.html",
        "plots/per_class_f1.png",
        "plots/f1_vs_params.png",
    ):
        assert (out / name).is_file(), name
    # again: the two finished models are reused, only the broken one is retried
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert printed.count("finished earlier") == 2


def test_copy_threads_reach_the_store_and_read_the_same_batches(store: Path) -> None:
    from landzoo.training.run import make_datamodule

    batches = []
    for threads in (1, 2):
        dm = make_datamodule(store, bands=("B02", "B03", "B04", "B08"), classes="ben19", batch_size=32,
                             eval_batch_size=32, num_workers=0, seed=0, copy_threads=threads)  # fmt: skip
        dm.setup("fit")
        assert dm.datasets["train"].threads == threads
        batches.append(next(iter(dm.train_dataloader())))
    assert batches[0]["id"] == batches[1]["id"]
    for group, x in batches[0]["image"].items():
        assert torch.equal(x, batches[1]["image"][group])


@pytest.mark.parametrize("drop_last", [False, True])
def test_steps_per_epoch_is_what_the_loader_yields(store: Path, tmp_path: Path, drop_last: bool) -> None:
    """The lr schedule's step count must equal the training batches, with or without the last partial one."""
    from landzoo.training.config import load_config, resolve_scaling
    from landzoo.training.data import steps_per_epoch
    from landzoo.training.run import make_datamodule

    cfg = load_config(None, overrides(store, tmp_path, **{"data.batch_size": 32, "data.drop_last": drop_last}))
    dm = make_datamodule(store, bands=("B02", "B03", "B04", "B08"), classes="ben19", batch_size=32,
                         eval_batch_size=32, num_workers=0, seed=0, drop_last=drop_last)  # fmt: skip
    dm.setup("fit")
    assert len(dm.store.rows("train")) % 32 != 0  # a partial last batch exists, so drop_last matters
    assert steps_per_epoch(len(dm.store.rows("train")), cfg, resolve_scaling(cfg, 1)) == len(dm.train_dataloader())
