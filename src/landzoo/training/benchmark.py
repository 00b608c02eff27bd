"""``landzoo benchmark``: every model under one protocol on one machine, then a leaderboard and a report.

Each model is one ordinary run (:func:`landzoo.training.run.fit`) in ``OUT/runs/<model>/`` with the same
protocol, data, epochs, seed and hardware; only the model name differs. A finished run (its
``results.json`` says ``ok`` for exactly this config) is reused unless ``rerun=True``; an interrupted one
(killed, or stopped by SIGTERM: its ``last.ckpt`` and ``config.yaml`` are there) is resumed, so a rerun of
the same command ends with the leaderboard an uninterrupted benchmark writes. SIGTERM stops the whole
benchmark after the running model has saved its checkpoint (no leaderboard is written for a partial
benchmark). A model that fails is written into the leaderboard with its one-line error (its own exception,
named) and the others still run. Outputs in ``OUT/``:

* ``leaderboard.csv``, ``leaderboard.json`` (rows + baseline + protocol + hardware), ``leaderboard.md``;
* ``plots/f1_vs_params.png``, ``f1_vs_inference.png``, ``f1_vs_train_time.png``, ``per_class_f1.png``;
* ``report.html``: one self-contained file (plots embedded as base64).

The best constant predictor (from the test labels alone) is shown beside the models, so "learning" is
visible: a model at the baseline learned nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landzoo.errors import LandzooError
from landzoo.training.report import (
    LEADERBOARD_COLUMNS,
    _get,
    format_leaderboard,
    leaderboard_rows,
    make_plots,
    write_html,
    write_leaderboard,
)

if TYPE_CHECKING:
    from landzoo.training.config import TrainConfig

__all__ = [
    "LEADERBOARD_COLUMNS",
    "BenchmarkError",
    "format_leaderboard",
    "leaderboard_rows",
    "make_plots",
    "run_benchmark",
    "write_html",
    "write_leaderboard",
]


class BenchmarkError(LandzooError):
    """Bad benchmark input: no models, an unknown model name, a missing store."""


# ---- orchestration ----------------------------------------------------------------------------------
def finished_run(cfg: TrainConfig) -> dict[str, Any] | None:
    """The results of a finished, successful run of exactly ``cfg`` in its run folder, else None.

    "Exactly" means the stored config equals ``cfg`` in every key (protocol, epochs, store, model and its
    options, ...), so a benchmark or scale search never mixes runs trained under other settings.
    """
    path = cfg.run_dir / "results.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if data.get("status") != "ok":
        return None
    same = json.dumps(data.get("config"), sort_keys=True, default=str) == json.dumps(
        json.loads(json.dumps(cfg.to_dict(), default=str)), sort_keys=True
    )
    return data if same else None


def interrupted_run(cfg: TrainConfig) -> bool:
    """True when ``cfg``'s run folder holds an unfinished run of exactly ``cfg`` (its resume point and config)."""
    import yaml

    from landzoo.training.schema import TrainConfig as _Config

    if not (cfg.run_dir / "checkpoints" / "last.ckpt").is_file() or finished_run(cfg) is not None:
        return False
    try:
        stored = _Config.from_dict(yaml.safe_load((cfg.run_dir / "config.yaml").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError, yaml.YAMLError):
        return False
    return stored == cfg


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError):
        from landzoo.files import os_error_message

        return f"{type(err).__name__}: {os_error_message(err)}"
    text = str(err).strip().splitlines()
    msg = text[0] if text else ""
    return f"{type(err).__name__}: {msg}" if not isinstance(err, LandzooError) else msg


def parse_model_specs(models: Sequence[str]) -> list[tuple[str, str]]:
    """``["wrn_eca_b0", "resnet50_mini=resnet50"]`` -> ``[(label, zoo name), ...]`` (label = run name)."""
    specs = []
    for item in models:
        item = item.strip()
        if not item:
            continue
        label, _, name = item.partition("=") if "=" in item else (item, "", item)
        label, name = label.strip(), name.strip()
        if not label or not name:
            raise BenchmarkError(f"bad model entry {item!r}; use NAME or LABEL=NAME")
        specs.append((label, name))
    if not specs:
        raise BenchmarkError("no models given (--models a,b,c)")
    labels = [lab for lab, _ in specs]
    dup = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dup:
        raise BenchmarkError(f"model(s) listed twice: {', '.join(dup)}")
    return specs


def run_benchmark(
    models: Sequence[str],
    store: str | Path,
    *,
    protocol: str | None = None,
    epochs: int | None = None,
    out: str | Path = "benchmark",
    rerun: bool = False,
    config: str | Path | None = None,
    overrides: Sequence[str] = (),
    model_kwargs: dict[str, dict[str, Any]] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and evaluate each model under one protocol; write the leaderboard, plots and report.

    ``models``: zoo names, or ``LABEL=NAME`` to run a zoo model under another name, e.g. with
    ``model_kwargs={"LABEL": {...}}`` (architecture options, say a smaller ResNet for a CPU demo).
    ``config``/``overrides`` apply to every model (``model.name``, ``data.store``, ``out`` and ``name`` are set
    here); ``protocol``, when given, is a protocol named on the command line (it sets all its keys over the
    config file's). Returns ``{"rows", "baseline", "meta", "paths"}``, or ``{"status": "preempted", "model":
    LABEL, "checkpoint": PATH}`` when SIGTERM stopped the benchmark.
    """
    from landzoo.files import atomic_write_text
    from landzoo.training import run as run_mod
    from landzoo.training.config import load_config
    from landzoo.training.signals import stop_agreed

    specs = parse_model_specs(models)
    model_kwargs = dict(model_kwargs or {})
    unknown = sorted(set(model_kwargs) - {lab for lab, _ in specs})
    if unknown:
        raise BenchmarkError(f"model kwargs given for {', '.join(unknown)}, which is not in --models")
    run_mod.check_model_names([name for _, name in specs])
    store = Path(store)
    run_mod.check_store(store)
    out = Path(out)
    runs_dir = out / "runs"

    def config_of(label: str, model: str) -> TrainConfig:
        extra = [
            *([f"protocol={protocol}"] if protocol else []),
            f"model.name={model}",
            f"data.store={store}",
            f"out={runs_dir}",
            f"name={label}",
        ]
        if epochs is not None:
            extra.append(f"trainer.epochs={epochs}")
        extra += [f"model.kwargs.{k}={json.dumps(v)}" for k, v in model_kwargs.get(label, {}).items()]
        return load_config(config, [*overrides, *extra])

    configs = [config_of(label, model) for label, model in specs]  # every config is valid before anything trains
    runs_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    durations: list[float] = []
    n = len(specs)
    for i, ((label, model), cfg) in enumerate(zip(specs, configs, strict=True), 1):
        result_path = cfg.run_dir / "results.json"
        done = None if rerun else finished_run(cfg)
        if done is not None:
            print(f"[{i}/{n}] {label}: finished earlier, reusing {result_path} (--rerun to train again)", flush=True)
            results.append(done)
            continue
        resume = not rerun and interrupted_run(cfg)
        eta = f", about {sum(durations) / len(durations) * (n - i + 1) / 60:.1f} min left" if durations else ""
        what = "resuming" if resume else "training"
        print(f"[{i}/{n}] {label}: {what} {model} under protocol {cfg.protocol!r}{eta}", flush=True)
        if stop_agreed():
            return _preempted(label, cfg)
        t0 = time.perf_counter()
        try:
            res = run_mod.fit(cfg, resume=resume, overwrite=not resume, progress=progress, label=f"[{i}/{n}] {label}")
        except Exception as err:  # a failed model is reported with its own error, the others still run
            res = {"model": label, "arch": model, "status": "failed", "error": _one_line(err), "config": cfg.to_dict()}
            atomic_write_text(result_path, json.dumps(res, indent=2, default=str) + "\n")
            print(f"[{i}/{n}] {label}: FAILED: {res['error']}", flush=True)
        if res.get("status") == "preempted":
            return _preempted(label, cfg)
        durations.append(time.perf_counter() - t0)
        results.append(res)

    rows = leaderboard_rows(results)
    ok = [r for r in results if r.get("status") == "ok"]
    baseline = next((r.get("baseline") for r in ok if r.get("baseline")), None)
    classes: list[str] = next((list(r.get("classes") or []) for r in ok if r.get("classes")), [])
    per_class = {r["model"]: r.get("test_per_class") or {} for r in ok}
    first = ok[0] if ok else {}
    meta = {
        "protocol": protocol or _get(first, "config", "protocol"),
        "store": str(store),
        "models": ",".join(lab if lab == name else f"{lab}={name}" for lab, name in specs),
        "epochs": epochs if epochs is not None else _get(first, "config", "trainer", "epochs"),
        "global_batch": _get(first, "scaling", "global_batch"),
        "precision": _get(first, "cost", "precision"),
        "test_patches": _get(first, "test_patches"),
        "hardware": _get(first, "env", "hardware"),
        "software": {k: v for k, v in (first.get("env") or {}).items() if k != "hardware"},
        "wall_time_s": round(time.perf_counter() - t_start, 1),
    }
    paths = write_leaderboard(rows, baseline, meta, out)
    plots = make_plots(rows, per_class, classes, baseline, out / "plots")
    paths["html"] = write_html(
        rows, baseline, meta, plots, out, per_class=per_class, classes=classes, config=first.get("config")
    )
    paths.update({f"plot_{k}": v for k, v in plots.items()})
    return {"rows": rows, "baseline": baseline, "meta": meta, "paths": paths}


def _preempted(label: str, cfg: TrainConfig) -> dict[str, Any]:
    return {"status": "preempted", "model": label, "checkpoint": str(cfg.run_dir / "checkpoints" / "last.ckpt")}
