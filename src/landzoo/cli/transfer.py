"""``landzoo transfer``: fine-tune or linear-probe a pretrained zoo model on SEN12MS, EuroSAT or BigEarthNet."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _kv(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            from landzoo.transfer.run import TransferError

            raise TransferError(f"--arch-option {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def register(sub: argparse._SubParsersAction) -> None:
    from landzoo.transfer.protocols import PROTOCOLS

    p = sub.add_parser(
        "transfer",
        help="transfer a pretrained zoo model to SEN12MS/EuroSAT/BigEarthNet: label fractions x seeds x inits",
        description="For each label fraction and seed, train the target task from the zoo checkpoint (first layer "
        "adapted by band name), from random initialisation and, given a local timm weight file, from ImageNet; "
        "write a table, a plot of score vs fraction and a report with cost and hardware. Every run trains on "
        "landzoo's training engine (devices, DDP, precision, resume, SIGTERM as for fit): finished runs are "
        "reused and an interrupted one resumes when the same command runs again. See docs/transfer.md.",
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="CHECKPOINT_OR_ZOO_NAME",
        help="checkpoint (model.safetensors, its folder, a `landzoo fit` run folder) or a name in --zoo",
    )
    p.add_argument("--dataset", required=True, choices=sorted(PROTOCOLS), help="target dataset (protocol)")
    p.add_argument(
        "--data",
        required=True,
        metavar="STORE_OR_RAW",
        help="a store (`landzoo encode`) or the raw dataset folder (then encoded into OUT/store)",
    )
    p.add_argument("--out", default="transfer-out", help="output folder (default: transfer-out)")
    p.add_argument(
        "--zoo", default=None, help="folder of pretrained runs, e.g. a `landzoo benchmark` output (or LANDZOO_ZOO)"
    )
    p.add_argument("--fractions", default="0.01,0.05,0.1,0.5,1.0", help="label fractions in (0, 1], comma-separated")
    p.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated (each draws its own label subsets)")
    p.add_argument(
        "--mode",
        choices=("finetune", "linear"),
        default="finetune",
        help="finetune: train every weight; linear: frozen encoder, train the classifier (default finetune)",
    )
    p.add_argument("--inits", default="zoo,random", help="initialisations to compare: zoo,random[,imagenet]")
    p.add_argument(
        "--imagenet-weights",
        default=None,
        metavar="FILE",
        help="local timm weight file for the ImageNet initialisation (nothing is downloaded)",
    )
    p.add_argument("--bands", default=None, help="target bands by name (default: the checkpoint's bands the data has)")
    res = p.add_mutually_exclusive_group()
    res.add_argument(
        "--resize",
        dest="resolution",
        action="store_const",
        const="resize",
        help="resample each patch to the model's input size (default)",
    )
    res.add_argument(
        "--crop",
        dest="resolution",
        action="store_const",
        const="crop",
        help="crop (random in training, centred otherwise) or pad at native 10 m to the model's input",
    )
    p.set_defaults(resolution="resize")
    p.add_argument("--single-label", action="store_true", help="SEN12MS: single-label (argmax) instead of multi-label")
    p.add_argument("--threshold", type=float, default=None, help="SEN12MS: coverage threshold of multi-label (0.1)")
    p.add_argument(
        "--new-band-rule",
        choices=("nearest", "copy", "zero"),
        default="nearest",
        help="kernel of a band the checkpoint lacks (default nearest: see docs/transfer.md)",
    )
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 30 finetune, 100 linear)")
    p.add_argument("--min-steps", type=int, default=50, help="at least this many optimiser steps per run (default 50)")
    p.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default 1e-3 finetune, 1e-2 linear)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--eval-batch-size", type=int, default=128)
    p.add_argument("--augment", choices=("none", "dihedral"), default="dihedral", help="finetune augmentation")
    p.add_argument("--val-every", type=int, default=None, help="validate every N epochs (default epochs/10)")
    p.add_argument(
        "--stats",
        default="train",
        help="normalisation: train (from the target's training images), checkpoint, or a JSON file",
    )
    p.add_argument(
        "--independent-fractions",
        action="store_true",
        help="draw each fraction's subset independently (default: nested subsets per seed)",
    )
    p.add_argument("--device", default="auto", help="accelerator: auto, cpu or cuda (default auto)")
    p.add_argument(
        "--devices",
        type=int,
        default=1,
        help="devices (processes) per node; more than 1 trains with DDP, like fit (default 1; torchrun and srun "
        "launch one process per device, see docs/training.md)",
    )
    p.add_argument("--num-nodes", type=int, default=1, help="nodes (with --devices per node; default 1)")
    p.add_argument(
        "--precision",
        default="auto",
        help="auto (bf16-mixed on a GPU that has it, else 32-true), 32-true, bf16-mixed, 16-mixed (default auto)",
    )
    p.add_argument(
        "--logger",
        choices=("csv", "tensorboard", "mlflow", "wandb", "none"),
        default="csv",
        help="where each run logs loss, lr and validation metrics (as fit's trainer.logger; default csv)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="data loader processes per device (and encode processes for raw data)"
    )
    p.add_argument("--no-checkpoints", action="store_true", help="do not save a checkpoint per run")
    p.add_argument("--rerun", action="store_true", help="retrain runs that already have results in OUT")
    p.add_argument(
        "--arch-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="architecture option overriding the checkpoint's (JSON values), repeatable",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per validated epoch)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-epoch lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from landzoo.transfer.run import TransferConfig, TransferError, run_transfer

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise TransferError(f"--seeds {args.seeds!r}: expected integers separated by commas") from None
    cfg = TransferConfig(
        source=args.source,
        dataset=args.dataset,
        data=args.data,
        out=args.out,
        fractions=args.fractions,  # type: ignore[arg-type]  # parsed and checked by TransferConfig
        seeds=seeds,
        mode=args.mode,
        inits=tuple(i.strip() for i in args.inits.split(",") if i.strip()),
        imagenet_weights=args.imagenet_weights,
        zoo=args.zoo,
        bands=args.bands,
        resolution=args.resolution,
        single_label=args.single_label,
        threshold=args.threshold,
        new_band_rule=args.new_band_rule,
        epochs=args.epochs,
        min_steps=args.min_steps,
        lr=args.lr,
        weight_decay=args.weight_decay,
        batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size,
        augment=args.augment,
        val_every=args.val_every,
        stats=args.stats,
        nested=not args.independent_fractions,
        device=args.device,
        devices=args.devices,
        num_nodes=args.num_nodes,
        precision=args.precision,
        logger=args.logger,
        workers=args.workers,
        save_checkpoints=not args.no_checkpoints,
        rerun=args.rerun,
        arch_kwargs=_kv(args.arch_option),
    )
    from landzoo.training.signals import sigterm_stops, stopped_message
    from landzoo.training.trainer import is_global_zero

    with sigterm_stops():
        summary = run_transfer(cfg, progress=not (args.quiet or args.no_progress), epoch_lines=not args.quiet)
    if summary.get("status") == "preempted":
        print(stopped_message("transfer", summary), flush=True)
        return 143  # 128 + SIGTERM: what schedulers expect from a preempted job
    if not is_global_zero():
        return 0
    from landzoo.transfer.report import table_markdown

    print(table_markdown(summary))
    if not cfg.imagenet_weights:
        print("ImageNet initialisation not compared: no --imagenet-weights FILE given (landzoo downloads no weights).")
    print(f"report: {Path(cfg.out) / 'report.md'}")
    return 0
