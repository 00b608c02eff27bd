"""Transfer numbers of the test suite's synthetic setting, per seed: to compare two versions of the engine.

    python benchmarks/bench_transfer.py --out benchmarks/results/transfer-synthetic-vm.json [--label after]

Builds exactly what ``tests/transfer/transfer_synth.py`` builds (a WRN-10-2 at 32 px pretrained on a 600-patch
synthetic BigEarthNet-v1, an 800-patch synthetic SEN12MS at 32 px), then runs the two sweeps of
``tests/transfer/test_transfer_synthetic.py`` (linear probe at 5 %, fine-tuning at 10 %, seeds 0-2, zoo and
random) and writes every run's test score, the per-(init) mean and std over seeds, the wall time and the
machine. Uses only the public API (``TransferConfig``, ``run_transfer``), so the same script measures any
version. Single-threaded torch, as the tests.

``--demo-run RUN --demo-store STORE`` measures instead the transfer step of ``landzoo demo --transfer`` (linear
probe of the demo's wrn_eca_b0 on its synthetic SEN12MS store, fractions 0.05/0.2/1) over seeds 0-4, to see
the seed-to-seed spread of the demo's one-seed table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "transfer"))

SWEEPS = {
    "linear_f0.05": dict(fractions=(0.05,), mode="linear", epochs=50, min_steps=0, batch_size=32),
    "finetune_f0.1": dict(fractions=(0.1,), mode="finetune", epochs=20, min_steps=100, lr=3e-3, batch_size=16),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--label", default="", help="a name for this measurement (e.g. before / after)")
    parser.add_argument("--sweeps", default=",".join(SWEEPS), help=f"which sweeps ({','.join(SWEEPS)})")
    parser.add_argument("--demo-run", default=None, help="the demo's benchmark/runs/wrn_eca_b0 folder")
    parser.add_argument("--demo-store", default=None, help="the demo's sen12ms-store folder")
    args = parser.parse_args(argv)
    if args.demo_run:
        return demo_spread(args)

    import torch

    torch.set_num_threads(1)
    from transfer_synth import pretrained_checkpoint, sen12ms_store

    from landzoo.training.cost import environment_info
    from landzoo.transfer.run import TransferConfig, run_transfer

    out: dict = {"label": args.label, "env": environment_info("cpu"), "sweeps": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        store, zoo = sen12ms_store(root), pretrained_checkpoint(root)
        out["setup_s"] = round(time.perf_counter() - t0, 1)
        for name in args.sweeps.split(","):
            t0 = time.perf_counter()
            cfg = TransferConfig(source=str(zoo), dataset="sen12ms", data=str(store), out=str(root / name),
                                 seeds=(0, 1, 2), workers=0, save_checkpoints=False, **SWEEPS[name])  # fmt: skip
            summary = run_transfer(cfg, progress=False)
            scores: dict[str, dict[str, float]] = {}
            for r in summary["runs"]:
                scores.setdefault(r["init"], {})[str(r["seed"])] = r["score"]
            out["sweeps"][name] = {
                "settings": SWEEPS[name],
                "score": summary["protocol"]["score"],
                "per_seed": scores,
                "mean": {i: statistics.mean(s.values()) for i, s in scores.items()},
                "std": {i: statistics.stdev(s.values()) for i, s in scores.items()},
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            print(name, json.dumps(out["sweeps"][name]["per_seed"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


def demo_spread(args: argparse.Namespace) -> int:
    """The demo's transfer step (linear probe, fractions 0.05/0.2/1) over seeds 0-4: per-seed micro-F1 in %."""
    import torch

    from landzoo.training.cost import environment_info
    from landzoo.transfer.run import TransferConfig, run_transfer

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cfg = TransferConfig(source=args.demo_run, dataset="sen12ms", data=args.demo_store, out=tmp,
                             fractions=(0.05, 0.2, 1.0), seeds=(0, 1, 2, 3, 4), mode="linear", epochs=50,
                             min_steps=0, batch_size=32, workers=0, save_checkpoints=False)  # fmt: skip
        summary = run_transfer(cfg, progress=False)
        scores: dict[str, list[float]] = {}
        for r in summary["runs"]:
            scores.setdefault(f"{r['init']} {r['fraction']:g}", []).append(round(100 * r["score"], 1))
    out = {
        "label": args.label,
        "what": "landzoo demo --transfer step over seeds 0-4 (micro-F1 %, test)",
        "env": environment_info("cpu"),
        "torch_threads": torch.get_num_threads(),
        "per_seed": scores,
        "mean": {k: round(statistics.mean(v), 1) for k, v in scores.items()},
        "std": {k: round(statistics.stdev(v), 1) for k, v in scores.items()},
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
