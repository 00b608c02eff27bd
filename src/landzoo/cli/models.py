"""``landzoo models``: every architecture of the zoo with trainable parameters, MACs, input size and family.

Parameters and MACs are measured on a network built on PyTorch's ``meta`` device (shapes only, no memory,
no initialisation); MACs are counted by ``FlopCounterMode`` at the model's own input size (convolutions and
matrix products). Measuring all 58 models takes tens of seconds, so the default listing (10 bands, 19 classes)
is read from :data:`CATALOGUE_FILE`, computed once by ``scripts/make_model_catalogue.py`` with
:func:`zoo_rows` and shipped in the package (the tests check it against the builders); other ``--bands`` or
``--classes`` are measured on the spot. ``--bench`` builds each model for real and times forward passes
(batch 64 by default, warm-up excluded).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landzoo.errors import LandzooError

FORMATS = ("table", "csv", "markdown", "json")
#: The zoo as listed by default, measured once from the builders (``scripts/make_model_catalogue.py``).
CATALOGUE_FILE = Path(__file__).resolve().parent.parent / "models" / "catalogue.json"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the model zoo (parameters, MACs, input size, family)",
        description=(
            "List every registered architecture with its trainable parameters (10 bands, 19 classes unless "
            "--bands/--classes say otherwise), MACs at its input resolution, input resolution and family. "
            "--bench adds forward throughput (img/s)."
        ),
    )
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    p.add_argument("--filter", metavar="PATTERN", help="only names matching this shell pattern, e.g. 'wrn*'")
    p.add_argument("--family", help="only this family (wrn, wrn_eca, efficientnet_eca, vit, mixer, resnet, ...)")
    p.add_argument("--bands", default="s2_10m_20m", help="band selection (default: s2_10m_20m, the paper's 10)")
    p.add_argument("--classes", default="ben19", help="class set (default: ben19)")
    p.add_argument("--bench", action="store_true", help="measure forward img/s of each model (slow for big models)")
    p.add_argument("--device", default="cpu", help="device for --bench (default: cpu)")
    p.add_argument("--batch", type=int, default=64, help="batch size for --bench (default: 64)")
    p.add_argument("--iters", type=int, default=3, help="timed batches per model for --bench (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up batches for --bench (default: 1)")
    p.add_argument(
        "--threads", type=int, help="CPU threads for torch (default: torch's; 1 is steadier on a busy machine)"
    )
    p.set_defaults(func=run)


def format_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> str:
    """Render ``rows`` as an aligned text table, CSV, a Markdown table or JSON (list of objects)."""
    if fmt == "json":
        return json.dumps([{c: r.get(c) for c in columns} for r in rows], indent=1)
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
        w.writerows([[r.get(c, "") if r.get(c) is not None else "" for c in columns] for r in rows])
        return buf.getvalue().rstrip("\n")
    numeric = [all(_is_num(r.get(c)) for r in rows if r.get(c) is not None) for c in columns]
    if fmt == "markdown":
        head = "| " + " | ".join(columns) + " |"
        rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
        return "\n".join([head, rule, *("| " + " | ".join(row) + " |" for row in cells)])
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(columns)]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(vals, widths, numeric, strict=True)
        ).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def zoo_rows(
    names: Sequence[str],
    *,
    bands: str = "s2_10m_20m",
    classes: str = "ben19",
    bench: bool = False,
    device: str = "cpu",
    batch: int = 64,
    iters: int = 3,
    warmup: int = 1,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """One row per model: name, family, input_size, params, MACs (millions) and, with ``bench``, forward img/s."""
    import torch
    from tqdm import tqdm

    from landzoo import contract
    from landzoo.models import build_backbone, count_macs, count_params, get_model_info, resolve_classes
    from landzoo.models.bench import forward_throughput

    in_chans, num_classes = len(contract.resolve_bands(bands)), len(resolve_classes(classes))
    rows = []
    for name in tqdm(names, desc="measuring models", unit="model", disable=not progress, file=sys.stderr):
        info = get_model_info(name)
        with torch.device("meta"):
            net, size = build_backbone(name, in_chans=in_chans, num_classes=num_classes)
        row: dict[str, Any] = {
            "name": name,
            "family": info.family,
            "source": info.source,
            "input_size": size,
            "params": count_params(net),
            "mmacs": round(count_macs(net, (1, in_chans, size, size), device="meta") / 1e6, 1),
            "reference_params": info.reference_params,
        }
        del net
        if bench:
            real, _ = build_backbone(name, in_chans=in_chans, num_classes=num_classes)
            row["fwd_img_s"] = round(
                forward_throughput(
                    real, (in_chans, size, size), batch=batch, device=device, warmup=warmup, iters=iters
                ),
                1,
            )
            del real
        rows.append(row)
    return rows


def read_catalogue(path: str | Path = CATALOGUE_FILE) -> dict[str, Any]:
    """The shipped catalogue: ``{"bands", "classes", "models": [row, ...]}``, rows in ``list_models()`` order."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise LandzooError(f"the model catalogue {path} is unreadable ({err}); reinstall landzoo") from None
    return data


def select_rows(rows: Sequence[dict[str, Any]], pattern: str | None, family: str | None) -> list[dict[str, Any]]:
    """Rows whose name matches the shell ``pattern`` and whose family is ``family`` (as ``list_models`` filters)."""
    import fnmatch

    return [
        r
        for r in rows
        if (not pattern or fnmatch.fnmatchcase(r["name"], pattern)) and (not family or r["family"] == family)
    ]


def catalogue_rows(*, progress: bool = False) -> list[dict[str, Any]]:
    """Every model of the zoo measured from its builder with the catalogue's defaults: what the shipped file holds."""
    from landzoo.models import list_models

    return zoo_rows(list_models(), progress=progress)


def run(args: argparse.Namespace) -> int:
    import time

    if args.batch < 1 or args.iters < 1 or args.warmup < 0:
        raise LandzooError("--batch and --iters must be at least 1, --warmup at least 0")
    t0 = time.perf_counter()
    shipped = read_catalogue()
    measured = args.bench or (args.bands, args.classes) != (shipped["bands"], shipped["classes"])
    if measured:
        from landzoo.models import list_models

        names, rows = list_models(args.filter, args.family), []
    else:
        rows = select_rows(shipped["models"], args.filter, args.family)
        names = [r["name"] for r in rows]
    if not names:
        raise LandzooError(
            f"no model matches filter={args.filter!r} family={args.family!r}; `landzoo models` lists all"
        )
    if args.threads is not None:
        if args.threads < 1:
            raise LandzooError("--threads must be at least 1")
        import torch

        torch.set_num_threads(args.threads)
    if measured:
        rows = zoo_rows(
            names,
            bands=args.bands,
            classes=args.classes,
            bench=args.bench,
            device=args.device,
            batch=args.batch,
            iters=args.iters,
            warmup=args.warmup,
            progress=sys.stderr.isatty(),
        )
    columns = ["name", "family", "input_size", "params", "mmacs", "reference_params"]
    if args.bench:
        columns.append("fwd_img_s")
    print(format_rows(rows, columns, args.format))
    if args.format == "table":
        how = "from the shipped catalogue" if not measured else f"measured in {time.perf_counter() - t0:.1f} s"
        note = f"{len(rows)} models ({how}); mmacs = millions of multiply-accumulates per image"
        if args.bench:
            from landzoo.models.bench import hardware_string

            hw = hardware_string(args.device)
            note += f"; fwd_img_s at batch {args.batch} on {hw.get('gpu') or hw['cpu']} ({hw['torch_threads']} threads)"
        print(note, file=sys.stderr)
    return 0
