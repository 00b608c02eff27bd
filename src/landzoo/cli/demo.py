"""``landzoo demo``: the main job on embedded synthetic data, end to end, on a laptop CPU.

1. generate a synthetic BigEarthNet-v1 dataset in the exact real on-disk format (GeoTIFFs, JSON, split CSVs);
2. encode it into a store (native-resolution band groups, checksummed shards);
3. benchmark a few small zoo models under the paper protocol for a few epochs;
4. print the leaderboard beside the best constant predictor and write the report;
5. with ``--transfer``: linear-probe the demo's WRN-ECA on a synthetic SEN12MS (zoo vs random initialisation,
   a few label fractions) and print the transfer table (``landzoo transfer`` with small settings).

Rerunning the same command continues: data generated and encoded with the same settings is kept, finished
models and transfer runs are reused and an interrupted one resumes (SIGTERM stops the demo once the running
model has saved its checkpoint, exit 143). ``--rerun`` trains every model again; other data settings start over.

The ResNet is a ResNet-50 with one bottleneck block per stage and an eighth of the widths (``resnet50_mini``):
the full ResNet-50 takes minutes per epoch on two CPU cores. The WRN and the ViT use PyTorch's default
initialisation (``init="torch"``) instead of the reference code's Keras one (BN gamma ~ U(-0.05, 0.05)), with
which they barely leave the constant baseline in a few epochs on 1,000 training patches. The demo's training
settings (batch 16, lr 2e-3, no decay) are in ``configs/demo.yaml``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from landzoo.training.config import CONFIG_DIR

#: The demo's models: label -> (zoo name, architecture options).
DEMO_MODELS: dict[str, tuple[str, dict]] = {
    "wrn_eca_b0": ("wrn_eca_b0", {"init": "torch"}),
    "resnet50_mini": ("resnet50", {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8}),
    "mixer_p12_120": ("mixer_p12_120", {}),
    "vit_p30_120": ("vit_p30_120", {"init": "torch"}),
}

CONFIG = CONFIG_DIR / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on embedded synthetic data (used by `make demo`)",
        description="Generate a synthetic BigEarthNet-v1 dataset in the real on-disk format, encode it into a "
        "store, benchmark a few small zoo models under the paper protocol and write the leaderboard and report.",
    )
    p.add_argument("--out", type=Path, default=Path("demo-output"), help="working folder (default: demo-output)")
    p.add_argument("--patches", type=int, default=2000, help="synthetic patches to generate (default: 2000)")
    p.add_argument("--epochs", type=int, default=6, help="epochs per model (default: 6)")
    p.add_argument(
        "--models", default=",".join(DEMO_MODELS), help=f"demo models to run (default: {','.join(DEMO_MODELS)})"
    )
    p.add_argument("--seed", type=int, default=42, help="generator seed (default: 42)")
    p.add_argument("--workers", type=int, default=2, help="worker processes for generate/encode (default: 2)")
    p.add_argument(
        "--transfer",
        action="store_true",
        help="also transfer the demo's wrn_eca_b0 to a synthetic SEN12MS (linear probe, zoo vs random; ~1 min)",
    )
    p.add_argument("--rerun", action="store_true", help="train every model again (default: reuse finished ones)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="training config overrides for every model")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.errors import LandzooError

    labels = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in labels if m not in DEMO_MODELS]
    if unknown:
        raise LandzooError(f"unknown demo model(s) {', '.join(unknown)}; choose from {', '.join(DEMO_MODELS)}")
    if not CONFIG.is_file():  # shipped with the package (configs/ of the checkout)
        raise LandzooError(f"demo config {CONFIG} is missing: the landzoo installation is incomplete")
    if args.transfer and "wrn_eca_b0" not in labels:
        raise LandzooError("--transfer starts from the demo's wrn_eca_b0: keep it in --models")
    from landzoo.training.signals import sigterm_stops

    with sigterm_stops():
        return _run(args, labels)


def _fresh_data(out: Path, stamp: str, settings: dict, folders: tuple[Path, ...], store: Path) -> bool:
    """True when ``out/stamp`` records ``settings`` and the store is complete; else clear ``folders`` for new data."""
    path = out / stamp
    try:
        same = json.loads(path.read_text(encoding="utf-8")) == settings and (store / "manifest.json").is_file()
    except (OSError, ValueError):
        same = False
    if not same:
        path.unlink(missing_ok=True)
        for folder in folders:
            if folder.exists():
                shutil.rmtree(folder)
    return same


def _run(args: argparse.Namespace, labels: list[str]) -> int:
    from landzoo.files import atomic_write_text
    from landzoo.store.encode import encode
    from landzoo.store.info import format_info, store_info
    from landzoo.synthetic import generate
    from landzoo.training.benchmark import format_leaderboard, run_benchmark
    from landzoo.training.signals import stopped_message

    out: Path = args.out
    raw, store, bench = out / "bigearthnet-v1", out / "store", out / "benchmark"
    t0 = time.perf_counter()
    progress = not args.no_progress
    settings = {"patches": args.patches, "seed": args.seed}
    if _fresh_data(out, "demo-data.json", settings, (raw, store, bench, out / "transfer"), store):
        print(f"[1/3] [2/3] data of an earlier demo with the same settings: reusing the store {store}", flush=True)
    else:
        print(f"[1/3] generating {args.patches} synthetic BigEarthNet-v1 patches in {raw} ...", flush=True)
        root = generate(
            "bigearthnet-v1", raw, patches=args.patches, seed=args.seed, workers=args.workers, progress=progress
        )
        print(f"[2/3] encoding them into the store {store} ...", flush=True)
        encode("bigearthnet-v1", root, store, workers=args.workers, progress=progress)
        atomic_write_text(out / "demo-data.json", json.dumps(settings) + "\n")
    print(format_info(store_info(store)), flush=True)
    t_data = time.perf_counter() - t0
    print(f"[3/3] benchmarking {', '.join(labels)} for {args.epochs} epochs each (protocol paper, CPU) ...", flush=True)
    result = run_benchmark(
        [f"{label}={DEMO_MODELS[label][0]}" for label in labels],
        store,
        epochs=args.epochs,
        out=bench,
        rerun=args.rerun,
        config=CONFIG,
        overrides=[f"data.store={store}", *args.overrides],
        model_kwargs={label: DEMO_MODELS[label][1] for label in labels if DEMO_MODELS[label][1]},
        progress=progress,
    )
    if result.get("status") == "preempted":
        print(stopped_message("demo", result), flush=True)
        return 143
    print()
    print(format_leaderboard(result["rows"], result["baseline"]))
    ok = all(r["status"] == "ok" for r in result["rows"])
    if args.transfer:
        done = _transfer(args, bench / "runs" / "wrn_eca_b0", progress)
        if done is None:
            return 143
        ok = done and ok
    total = time.perf_counter() - t0
    print(
        f"\ndemo finished in {total:.0f} s (data {t_data:.0f} s, training and evaluation {total - t_data:.0f} s); "
        f"report: {result['paths']['html']}"
    )
    return 0 if ok else 1


#: Synthetic SEN12MS for the transfer step: 32 px patches keep it to about a minute on two cores.
TRANSFER_PATCHES, TRANSFER_PX = 800, 32


def _transfer(args: argparse.Namespace, source: Path, progress: bool) -> bool | None:
    """Linear probe of the demo's WRN-ECA on synthetic SEN12MS, zoo vs random initialisation; prints the table.

    Returns None when SIGTERM stopped it (after the message saying how to continue)."""
    from landzoo.errors import LandzooError
    from landzoo.files import atomic_write_text
    from landzoo.store.encode import encode
    from landzoo.synthetic import generate
    from landzoo.training.signals import stopped_message
    from landzoo.transfer.report import table_markdown
    from landzoo.transfer.run import TransferConfig, run_transfer

    if not (source / "results.json").is_file():
        print(f"transfer skipped: the demo's wrn_eca_b0 run did not finish (no {source / 'results.json'})")
        return False
    raw, store, out = args.out / "sen12ms", args.out / "sen12ms-store", args.out / "transfer"
    settings = {"patches": TRANSFER_PATCHES, "patch_px": TRANSFER_PX, "seed": args.seed}
    print(f"[4/4] transfer: {source.name} -> synthetic SEN12MS ({TRANSFER_PATCHES} patches of {TRANSFER_PX} px), "
          "linear probe, zoo vs random ...", flush=True)  # fmt: skip
    if not _fresh_data(args.out, "demo-transfer-data.json", settings, (raw, store, out), store):
        generate("sen12ms", raw, patches=TRANSFER_PATCHES, seed=args.seed, patch_px=TRANSFER_PX, progress=progress)
        encode("sen12ms", raw, store, reader_kwargs={"patch_px": TRANSFER_PX}, workers=args.workers, progress=progress)
        atomic_write_text(args.out / "demo-transfer-data.json", json.dumps(settings) + "\n")
    cfg = TransferConfig(
        source=str(source), dataset="sen12ms", data=str(store), out=str(out), fractions=(0.05, 0.2, 1.0),
        seeds=(0,), mode="linear", epochs=50, min_steps=0, batch_size=32, workers=0, rerun=args.rerun,
    )  # fmt: skip
    try:
        summary = run_transfer(cfg, progress=progress)
    except LandzooError as err:
        print(f"transfer failed: {err}")
        return False
    if summary.get("status") == "preempted":
        print(stopped_message("demo transfer", summary), flush=True)
        return None
    print(table_markdown(summary))
    print(f"transfer report: {out / 'report.md'}")
    return True
