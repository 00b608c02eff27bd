"""Rebuild a trained model from what a run left: a Lightning ``.ckpt``, a landzoo ``model.safetensors``, a run folder.

The model is rebuilt from the architecture name and the data contract's band and class names, never from
pickled objects (``.ckpt`` files are read with ``weights_only=True``, :mod:`.checkpoint_io`), and the
rebuilt model's contract must equal the checkpoint's: bands and classes in order, input size, band grouping,
normalisation. Anything else is a one-line :class:`~landzoo.training.errors.RunError`. Other commands call
:func:`load_module` (``landzoo test``/``predict``, ``landzoo map``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from landzoo.errors import LandzooError
from landzoo.training.checkpoint_io import load_lightning_checkpoint
from landzoo.training.errors import RunError
from landzoo.training.module import LandCoverModule

__all__ = ["check_contract_against_store", "load_init_weights", "load_module", "resolve_checkpoint"]


def _contract_dict(c: Any) -> dict[str, Any]:
    """A checkpoint's data contract as a plain dict with ``stats`` as ``{band: [mean, std]}``."""
    if c is None:
        return {}
    d = c.to_dict() if hasattr(c, "to_dict") else dict(c)
    stats = {}
    for band, v in (d.get("stats") or {}).items():
        stats[band] = [float(v["mean"]), float(v["std"])] if isinstance(v, dict) else [float(x) for x in v]
    d["stats"] = stats
    return d


def resolve_checkpoint(checkpoint: str | Path) -> Path:
    path = Path(checkpoint)
    if path.is_dir():
        for cand in (
            path / "model.safetensors",
            path / "checkpoints" / "best.ckpt",
            path / "checkpoints" / "last.ckpt",
        ):
            if cand.is_file():
                return cand
        raise RunError(f"{path} holds no checkpoint (model.safetensors or checkpoints/*.ckpt)")
    if not path.is_file():
        raise RunError(f"checkpoint {path} does not exist")
    return path


def load_module(checkpoint: str | Path) -> LandCoverModule:
    """A module from a Lightning ``.ckpt`` (from ``fit``), a landzoo safetensors checkpoint or a run folder.

    The model is rebuilt from the architecture name and the contract's band and class names, and its contract
    must equal the checkpoint's (bands and classes in order, input size, normalisation): never a silent change.
    """
    path = resolve_checkpoint(checkpoint)
    if path.suffix == ".ckpt":
        state = load_lightning_checkpoint(path)
        hp = state.get("hyper_parameters") or {}
        saved = (state.get("landzoo") or {}).get("contract")
        if "config" not in hp or not saved or not saved.get("bands"):
            raise RunError(
                f"checkpoint {path} is not a landzoo training checkpoint (no config or data contract with band names)"
            )
        try:
            module = LandCoverModule(hp["config"], hp.get("scaling"), hp.get("data"))
        except (LandzooError, TypeError, ValueError, KeyError) as err:
            raise RunError(f"checkpoint {path}: its stored config does not build a model: {err}") from None
        _check_same_contract(module.contract, saved, path)
        try:
            module.load_state_dict(state["state_dict"])
        except (RuntimeError, KeyError, TypeError) as err:
            raise RunError(
                f"checkpoint {path}: weights do not fit architecture {module.cfg.model.name!r}: {_first_line(err)}"
            ) from None
        return module
    from landzoo import checkpoint as ckpt

    weights, meta = ckpt.load_checkpoint(path)
    saved = _contract_dict(_meta_get(meta, "contract"))
    if not saved.get("bands"):
        raise RunError(f"checkpoint {path} has no band names in its data contract; refusing to guess the band order")
    config = dict(_meta_get(meta, "config") or {})
    if "transfer" in config:  # written by `landzoo transfer`: its protocol is not a training config
        task = config.get("task")
        if task is None:  # written before the task was recorded: EuroSAT and --single-label runs are single-label
            t = config["transfer"]
            task = "singlelabel" if t.get("dataset") == "eurosat" or t.get("single_label") else "multilabel"
        if task != "multilabel":
            raise RunError(
                f"checkpoint {path} is a single-label (softmax) model from `landzoo transfer`; test and predict "
                "evaluate multi-label (sigmoid) models: its test metrics are in the transfer report"
            )
        config = {}
    model_cfg = dict(config.get("model") or {})
    model_cfg["name"] = _meta_get(meta, "arch") or model_cfg.get("name")
    kwargs = _meta_get(meta, "arch_kwargs")
    if kwargs is not None:
        model_cfg["kwargs"] = dict(kwargs)
    model_cfg["bands"] = ",".join(saved["bands"])
    if saved.get("class_set"):
        model_cfg["classes"] = saved["class_set"]
    config["model"] = model_cfg
    # the model normalises with the checkpoint's statistics and groups bands as it was trained (a transferred
    # EuroSAT/SEN12MS model has its own statistics and all bands on one 10 m grid)
    data = {"stats": saved.get("stats") or None, "native": bool(saved.get("native", True))}
    module = LandCoverModule(config, None, data)
    _check_same_contract(module.contract, saved, path)
    try:
        module.model.load_state_dict(weights)
    except RuntimeError as err:
        raise RunError(
            f"checkpoint {path}: weights do not fit architecture {model_cfg['name']!r}: {_first_line(err)}"
        ) from None
    return module


def _meta_get(meta: Any, key: str) -> Any:
    return meta.get(key) if isinstance(meta, dict) else getattr(meta, key, None)


def _check_same_contract(model: dict[str, Any], saved: dict[str, Any], path: Path) -> None:
    """The rebuilt model must see the data exactly as the checkpoint was trained on it."""
    if list(model["bands"]) != list(saved.get("bands") or []):
        raise RunError(
            f"checkpoint {path}: bands {','.join(saved.get('bands') or [])} but the rebuilt model takes {','.join(model['bands'])}"
        )
    if list(model["classes"]) != list(saved.get("classes") or model["classes"]):
        raise RunError(f"checkpoint {path}: its class order differs from class set {model['class_set']!r}")
    if saved.get("input_size") is not None and int(saved["input_size"]) != int(model["input_size"]):
        raise RunError(
            f"checkpoint {path}: input size {saved['input_size']} but the rebuilt model takes {model['input_size']}"
        )
    if bool(saved.get("native", True)) != bool(model.get("native", True)):
        raise RunError(f"checkpoint {path}: its band grouping (native={saved.get('native')}) differs from the model's")
    stats = saved.get("stats") or {}
    for band, (mean, std) in model["stats"].items():
        if band in stats and (
            abs(float(stats[band][0]) - mean) > 1e-3 * max(1.0, abs(mean))
            or abs(float(stats[band][1]) - std) > 1e-3 * max(1.0, std)
        ):
            raise RunError(
                f"checkpoint {path}: normalisation of {band} is mean {stats[band][0]}, std {stats[band][1]}; "
                f"this landzoo normalises with mean {mean}, std {std}"
            )


def check_contract_against_store(contract_: dict[str, Any], store: Path) -> None:
    """Refuse a store that lacks a checkpoint band or labels other classes (names and order).

    Bands are selected from the store by name, in the checkpoint's order, so a store that holds them in
    another order is fine; a missing band, another class set or another class order is an error.
    """
    from landzoo import checkpoint as ckpt
    from landzoo.store.reader import Store

    st = Store(store)
    missing = [b for b in contract_["bands"] if b not in st.bands]
    if missing:
        raise RunError(
            f"store {store} lacks band(s) {','.join(missing)}: checkpoint bands {','.join(contract_['bands'])} "
            f"vs store bands {','.join(st.bands)}"
        )
    dc = ckpt.DataContract.from_dict(contract_, source=f"checkpoint for store {store}")
    try:  # the bands are read from the store by name in the checkpoint's order (checked above): classes remain
        dc.check_compatible(dc.bands, st.classes)
    except LandzooError as err:
        raise RunError(f"store {store} does not match the checkpoint: {err}") from None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def load_init_weights(module: LandCoverModule, source: str | Path) -> Path:
    """Load a landzoo checkpoint's weights into ``module.model`` as its starting point (``model.init_from``).

    The checkpoint must name the same bands and classes in the same order and the same input size as the model,
    and its weights must fit the architecture exactly: starting "from" other weights is a one-line error.
    """
    from landzoo import checkpoint as ckpt

    path = Path(source)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise RunError(f"model.init_from: {path} does not exist (give a model.safetensors or a finished run folder)")
    weights, meta = ckpt.load_checkpoint(path)
    saved = _contract_dict(_meta_get(meta, "contract"))
    ours = module.contract
    for key in ("bands", "classes"):
        if list(saved.get(key) or []) != list(ours[key]):
            raise RunError(
                f"model.init_from {path}: its {key} {','.join(saved.get(key) or [])} differ from the model's "
                f"{','.join(ours[key])} (landzoo transfer adapts weights to other bands and classes)"
            )
    if saved.get("input_size") is not None and int(saved["input_size"]) != int(ours["input_size"]):
        raise RunError(
            f"model.init_from {path}: input size {saved['input_size']}, the model takes {ours['input_size']}"
        )
    try:
        module.model.load_state_dict(weights)
    except RuntimeError as err:
        raise RunError(
            f"model.init_from {path}: weights do not fit architecture {module.cfg.model.name!r}: {_first_line(err)}"
        ) from None
    return path
