"""Metrics over several processes equal those of one process; averaging per-shard metrics does not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from landzoo.contract import BEN19
from landzoo.metrics import MultiClassMetrics, MultiLabelMetrics

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

CLASSES = BEN19[:5]


def skewed_data(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores and labels whose two halves differ (class frequencies, score quality), like unshuffled shards."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, len(CLASSES), generator=g) < 0.3).long()
    y[: n // 2, 0] = (torch.rand(n // 2, generator=g) < 0.05).long()  # class 0 rare in the first shard
    noise = torch.rand(n, len(CLASSES), generator=g)
    quality = torch.cat([torch.full((n // 2, 1), 0.2), torch.full((n - n // 2, 1), 0.6)])
    p = (quality * y + (1 - quality) * noise).clamp(0, 1)
    return p, y


def scalars(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "per_class"}


def test_merged_state_equals_single_process_and_naive_average_differs() -> None:
    p, y = skewed_data()
    single = MultiLabelMetrics(CLASSES)
    for lo, hi in ((0, 37), (37, 100), (100, 163), (163, 200)):
        single.update(p[lo:hi], y[lo:hi])
    ref = single.compute()

    a, b = MultiLabelMetrics(CLASSES), MultiLabelMetrics(CLASSES)
    a.update(p[:60], y[:60])
    a.update(p[60:100], y[60:100])
    b.update(p[100:], y[100:])
    res_a, res_b = a.compute(), b.compute()
    a.merge_state(b)
    merged = a.compute()
    assert scalars(merged) == pytest.approx(scalars(ref), nan_ok=True)
    assert merged["per_class"] == ref["per_class"]

    # the reference code's way: average each shard's metric over workers
    for key in ("f1_macro", "f1_micro", "map_macro", "paper_accuracy_macro"):
        naive = (res_a[key] + res_b[key]) / 2
        assert abs(naive - ref[key]) > 1e-3, key


def test_summed_states_simulate_sync() -> None:
    """What DDP's all-reduce does to the states, by hand: sums of counts, concatenation of scores."""
    p, y = skewed_data(seed=1)
    ref = MultiLabelMetrics(CLASSES)
    ref.update(p, y)
    ranks = [MultiLabelMetrics(CLASSES) for _ in range(2)]
    ranks[0].update(p[::2], y[::2])  # interleaved shards, as a DistributedSampler gives
    ranks[1].update(p[1::2], y[1::2])
    states = [r.metric_state for r in ranks]
    synced = MultiLabelMetrics(CLASSES)
    for name in ("tp", "fp", "fn", "tn", "n_samples", "n_exact", "sample_sums"):
        setattr(synced, name, states[0][name] + states[1][name])
    synced.scores = [torch.cat(states[0]["scores"] + states[1]["scores"])]
    synced.targets = [torch.cat(states[0]["targets"] + states[1]["targets"])]
    synced._update_count = 1
    assert scalars(synced.compute()) == pytest.approx(scalars(ref.compute()), nan_ok=True)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        p, y = skewed_data()
        # uneven shards: rank 0 gets 120 samples in 3 batches, rank 1 gets 80 in 2
        lo, hi = (0, 120) if rank == 0 else (120, 200)
        ml = MultiLabelMetrics(CLASSES)
        mc = MultiClassMetrics(CLASSES)
        for s in range(lo, hi, 40):
            ml.update(p[s : s + 40], y[s : s + 40])
            mc.update(p[s : s + 40], y[s : s + 40].argmax(1))
        res = {"ml": ml.compute(), "mc": mc.compute(), "thr": ml.tune_thresholds().tolist()}
        res["local_after"] = int(ml.n_samples)  # compute() must leave the local state unsynchronised
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(res))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_equal_one(tmp_path: Path) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    p, y = skewed_data()
    ml, mc = MultiLabelMetrics(CLASSES), MultiClassMetrics(CLASSES)
    ml.update(p, y)
    mc.update(p, y.argmax(1))
    ref_ml, ref_mc, ref_thr = ml.compute(), mc.compute(), ml.tune_thresholds()
    for rank, local in ((0, 120), (1, 80)):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert scalars(got["ml"]) == pytest.approx(scalars(ref_ml), nan_ok=True)
        for name, row in ref_ml["per_class"].items():
            assert got["ml"]["per_class"][name] == pytest.approx(row, nan_ok=True), name
        assert scalars(got["mc"]) == pytest.approx(scalars(ref_mc))
        assert np.allclose(got["thr"], ref_thr.numpy())
        assert got["local_after"] == local
