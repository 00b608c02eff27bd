"""Where a run's configuration comes from, which source wins, and how to show it.

Sources, and the one precedence rule (later wins)::

    built-in defaults  <  protocol defaults  <  YAML file  <  protocol named on the command line  <  key=value

* The protocol (``paper`` or ``modern``, :mod:`.protocols`) is the one named by ``protocol=`` on the command
  line, else the file's ``protocol:``, else ``paper``.
* A protocol chosen **in the file** only fills what the file leaves out: a file writes what differs from its
  protocol.
* A protocol chosen **on the command line** sets every key the protocols set (both set the same keys), over
  the file: ``landzoo fit --config paper_wrn.yaml protocol=modern`` trains under the modern protocol's
  optimiser, schedule, lr, batch and epochs, not the paper file's lr with modern's scaling rule. The file still
  gives everything the protocols do not set (``model.*``, ``data.store``, ``trainer.accelerator``, ...);
  :data:`landzoo.training.protocols.PROTOCOL_KEYS` lists the keys they set.
* An explicit ``key=value`` on the command line beats everything.

:func:`load_config_with_sources` returns, beside the config, the source of every value;
``landzoo fit --print-config`` prints the effective config as YAML with each value's source as a comment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from landzoo.training.schema import (
    ConfigError,
    CostConfig,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    Scaling,
    ScheduleConfig,
    TrainConfig,
    TrainerConfig,
    flatten,
    resolve_scaling,
)

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "CostConfig",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Scaling",
    "ScheduleConfig",
    "TrainConfig",
    "TrainerConfig",
    "deep_merge",
    "format_with_sources",
    "load_config",
    "load_config_with_sources",
    "parse_overrides",
    "resolve_config",
    "resolve_scaling",
]


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, nested dicts merged key by key (the config layers' rule)."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["trainer.epochs=5", "model.kwargs.width=8"]`` -> nested dict; values parsed as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. trainer.epochs=5)")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = value
    return out


#: The configs shipped with landzoo: ``configs/`` of the checkout, installed as ``landzoo/configs`` (a link in src/).
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def resolve_config(path: str | Path) -> Path:
    """A config file: ``path`` itself if it exists, else the shipped config of that name (``bigearthnet-v1/wrn_eca_b0``,
    ``.yaml`` optional), so that an installed landzoo runs the paper's configs without the source checkout."""
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        raise ConfigError(f"config {path} is a folder; give a YAML file")
    if not path.is_absolute():
        for candidate in (CONFIG_DIR / path, CONFIG_DIR / path.with_suffix(".yaml")):
            if candidate.is_file():
                return candidate
        # "configs/bigearthnet-v1/x.yaml" typed outside the checkout: the same file among the shipped ones
        if path.parts[:1] == ("configs",) and (CONFIG_DIR / Path(*path.parts[1:])).is_file():
            return CONFIG_DIR / Path(*path.parts[1:])
    raise ConfigError(f"config file {path} does not exist (nor is it one of the shipped configs in {CONFIG_DIR})")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's mapping; malformed YAML, a non-UTF-8 file or another top-level type is a one-line error."""
    path = resolve_config(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not a {type(data).__name__}")
    return data


def load_config_with_sources(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] | dict[str, Any] = (),
) -> tuple[TrainConfig, dict[str, str]]:
    """The validated config and, per dotted key, where its value came from (see the module docstring)."""
    from landzoo.training.protocols import protocol_defaults

    file_data = read_yaml(path) if path is not None else {}
    over = overrides if isinstance(overrides, dict) else parse_overrides(list(overrides))
    cli_protocol = "protocol" in over
    protocol = over["protocol"] if cli_protocol else file_data.get("protocol", TrainConfig.protocol)
    if not isinstance(protocol, str):
        raise ConfigError(f"protocol must be a string, got {protocol!r}")
    proto = protocol_defaults(protocol)
    where = f"file {resolve_config(path)}" if path is not None else "file"
    layers: list[tuple[str, dict[str, Any]]] = [("default", TrainConfig().to_dict())]
    if cli_protocol:
        layers += [(where, file_data), (f"protocol {protocol} (command line)", proto)]
    else:
        layers += [(f"protocol {protocol}", proto), (where, file_data)]
    layers.append(("command line", over))
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, layer in layers:
        merged = deep_merge(merged, layer)
        for key in flatten(layer, into_kwargs=True):
            sources[key] = name
    source = str(path) if path is not None else "config"
    if over:
        source += " + overrides"
    cfg = TrainConfig.from_dict(merged, source=source)
    flat = flatten(cfg.to_dict(), into_kwargs=True)
    return cfg, {k: sources.get(k, "default") for k in flat}


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] | dict[str, Any] = (),
) -> TrainConfig:
    """The validated config from defaults, protocol, file and overrides (precedence: the module docstring)."""
    return load_config_with_sources(path, overrides)[0]


def format_with_sources(cfg: TrainConfig, sources: dict[str, str]) -> str:
    """The effective config as YAML (it loads back to the same config), each value followed by ``# <source>``."""
    lines: list[str] = []

    def scalar(v: Any) -> str:
        return yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()

    def emit(d: dict[str, Any], prefix: str, indent: int) -> None:
        for k, v in d.items():
            key = f"{prefix}{k}"
            pad = "  " * indent
            if isinstance(v, dict) and v:
                lines.append(f"{pad}{k}:")
                emit(v, f"{key}.", indent + 1)
            else:
                text = f"{pad}{k}: {scalar(v)}"
                lines.append(f"{text:<44} # {sources.get(key, 'default')}")

    emit(cfg.to_dict(), "", 0)
    return "\n".join(lines) + "\n"
