"""Benchmark zoo models: training-step img/s of wrn_eca_b0 vs resnet50 (the paper's "2x faster" claim), forward img/s.

    python benchmarks/bench_models.py                       # CPU, writes benchmarks/results/models-cpu.json
    python benchmarks/bench_models.py --device cuda --out benchmarks/results/models-cuda.json

Training steps (forward, BCE-with-logits, backward, Adam) run on random input at each model's own input size
(60 px for wrn_eca_b0, 120 px for resnet50), batch 32 by default. The two models are measured in alternation
(A, B, A, B, ...) and the median of the rounds is reported, so that a change in machine load hits both.
Forward throughput (batch 64, warm-up excluded) is measured for a list of models (``--forward``). The JSON
holds the results, the settings (CPU denormals are flushed to zero while timing, as TensorFlow does; see
``landzoo.models.bench``), the hardware (CPU model and core count or GPU name, no host name), the
load average before and after, and the library versions.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

DEFAULT_FORWARD = (
    "wrn10_2,wrn10_2_eca,wrn_eca_b0,wrn_eca_b1,wrn_eca_b2,wrn_eca_b3,efficientnet_eca_b0,efficientnet_eca_b1,"
    "vit_p20_120,vit_p40_120,mixer_p12_120,mixer_tiny_p12_120,resnet50,efficientnet_b0,densenet121"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--train", default="wrn_eca_b0,resnet50", help="models for the training-step comparison")
    parser.add_argument("--batch", type=int, default=32, help="training batch size (default: 32)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per round (default: 3)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    parser.add_argument(
        "--forward", default=DEFAULT_FORWARD, help="comma list of models for forward img/s ('' for none)"
    )
    parser.add_argument("--forward-batch", type=int, default=64)
    parser.add_argument("--forward-iters", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/models-<device>.json)")
    args = parser.parse_args(argv)

    import torch
    from tqdm import tqdm

    from landzoo.models import build_backbone, count_macs, count_params
    from landzoo.models.bench import forward_throughput, hardware_string, train_step_throughput

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    t_start = time.time()

    train_names = [n for n in args.train.split(",") if n]
    nets = {n: build_backbone(n) for n in train_names}
    rounds: dict[str, list[float]] = {n: [] for n in train_names}
    for _ in tqdm(range(args.rounds), desc="training-step rounds", file=sys.stderr):
        for name, (net, size) in nets.items():
            rounds[name].append(
                train_step_throughput(
                    net, (10, size, size), 19, batch=args.batch, device=args.device, warmup=1, iters=args.steps
                )
            )
    train = {
        name: {
            "input_size": size,
            "params": count_params(net),
            "macs_per_image": count_macs(net, (1, 10, size, size)),
            "train_img_s_median": round(statistics.median(rounds[name]), 2),
            "train_img_s_rounds": [round(v, 2) for v in rounds[name]],
        }
        for name, (net, size) in nets.items()
    }
    del nets
    ratio = None
    if {"wrn_eca_b0", "resnet50"} <= set(train):
        ratio = round(train["wrn_eca_b0"]["train_img_s_median"] / train["resnet50"]["train_img_s_median"], 2)

    forward = {}
    for name in tqdm([n for n in args.forward.split(",") if n], desc="forward img/s", file=sys.stderr):
        net, size = build_backbone(name)
        forward[name] = {
            "input_size": size,
            "params": count_params(net),
            "fwd_img_s": round(
                forward_throughput(
                    net,
                    (10, size, size),
                    batch=args.forward_batch,
                    device=args.device,
                    warmup=1,
                    iters=args.forward_iters,
                ),
                1,
            ),
        }
        del net

    result = {
        "benchmark": "landzoo model zoo throughput",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {
            "device": args.device,
            "train_batch": args.batch,
            "train_steps_per_round": args.steps,
            "rounds": args.rounds,
            "forward_batch": args.forward_batch,
            "forward_iters": args.forward_iters,
            "optimizer": "Adam lr 1e-4",
            "loss": "BCEWithLogits",
            "input": "random, at each model's own input size, 10 bands, 19 classes",
            "cpu_denormals_flushed": True,
            "init": "each model's default (paper init for the paper's own architectures)",
        },
        "train_step": train,
        "wrn_eca_b0_over_resnet50_train_speed": ratio,
        "forward": forward,
        "hardware": hardware_string(args.device),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "seconds": round(time.time() - t_start, 1),
    }
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"models-{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"train_step": {k: v["train_img_s_median"] for k, v in train.items()}, "ratio": ratio}, indent=1))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
