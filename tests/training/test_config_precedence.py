"""Config precedence, every combination: explicit key=value > protocol named on the command line > file > the file's
protocol > defaults; and ``--print-config`` names each value's source.

The expected value of each case is computed here from the rule in plain words (independently of the loader's
layering code), for a key every protocol sets (``optim.lr``, also ``data.batch_size``) and one no protocol sets
(``model.name``).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from landzoo.cli import main
from landzoo.training.config import load_config, load_config_with_sources
from landzoo.training.protocols import PROTOCOL_KEYS, PROTOCOLS
from landzoo.training.schema import TrainConfig, flatten

FILE_LR, CLI_LR = 0.0123, 0.0456
FILE_MODEL, CLI_MODEL = "resnet50", "vgg16"


def _expected(key: str, file_protocol: str | None, file_sets: bool, cli_protocol: str | None, cli_sets: bool):
    """(value, source) by the rule, spelt out case by case."""
    file_value, cli_value = (FILE_LR, CLI_LR) if key == "optim.lr" else (FILE_MODEL, CLI_MODEL)
    protocol = cli_protocol or file_protocol or "paper"
    protocol_value = flatten(PROTOCOLS[protocol]).get(key)
    default_value = flatten(TrainConfig().to_dict())[key]
    if cli_sets:
        return cli_value, "command line"
    if cli_protocol is not None and protocol_value is not None:
        return protocol_value, f"protocol {cli_protocol} (command line)"
    if file_sets:
        return file_value, "file"
    if protocol_value is not None:
        return protocol_value, f"protocol {protocol}"
    return default_value, "default"


CASES = list(
    itertools.product(
        ("optim.lr", "model.name"),  # a protocol key and a key no protocol sets
        (None, "paper", "modern"),  # protocol written in the file
        (False, True),  # the file sets the key
        (None, "paper", "modern"),  # protocol named on the command line
        (False, True),  # key=value on the command line
    )
)


@pytest.mark.parametrize(("key", "file_protocol", "file_sets", "cli_protocol", "cli_sets"), CASES)
def test_every_combination_of_sources(
    tmp_path: Path, key: str, file_protocol: str | None, file_sets: bool, cli_protocol: str | None, cli_sets: bool
) -> None:
    data: dict = {}
    if file_protocol:
        data["protocol"] = file_protocol
    if file_sets:
        data.update({"optim": {"lr": FILE_LR}} if key == "optim.lr" else {"model": {"name": FILE_MODEL}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    overrides = [f"protocol={cli_protocol}"] if cli_protocol else []
    if cli_sets:
        overrides.append(f"optim.lr={CLI_LR}" if key == "optim.lr" else f"model.name={CLI_MODEL}")
    cfg, sources = load_config_with_sources(path, overrides)
    value, source = _expected(key, file_protocol, file_sets, cli_protocol, cli_sets)
    assert flatten(cfg.to_dict())[key] == value
    assert sources[key] == (f"file {path}" if source == "file" else source)
    assert cfg.protocol == (cli_protocol or file_protocol or "paper")


def test_the_issue_case_modern_on_the_command_line_over_a_paper_file() -> None:
    """`fit --config bigearthnet-v1/wrn_eca_b0 protocol=modern` trains at modern's 5e-4 x 1024/256, not 1e-4 x 128/256."""
    from landzoo.training.config import resolve_scaling

    cfg = load_config("bigearthnet-v1/wrn_eca_b0", ["protocol=modern"])
    assert (cfg.optim.name, cfg.optim.lr, cfg.data.batch_size) == ("adamw", 5e-4, 1024)
    assert resolve_scaling(cfg, 1).lr_effective == pytest.approx(2e-3)
    assert cfg.data.store == "data/bigearthnet-v1-store" and cfg.data.num_workers == 8  # the file's other keys stay
    # and an explicit value still beats the protocol
    assert load_config("bigearthnet-v1/wrn_eca_b0", ["protocol=modern", "optim.lr=3e-4"]).optim.lr == 3e-4
    # the file's own protocol does not outrank the file
    assert load_config("bigearthnet-v1/wrn_eca_b0", []).optim.lr == 1e-4


def test_protocols_set_the_same_keys_and_every_key_is_a_config_key() -> None:
    config_keys = set(flatten(TrainConfig().to_dict()))
    for name, proto in PROTOCOLS.items():
        assert set(flatten(proto)) == set(PROTOCOL_KEYS), name
    assert set(PROTOCOL_KEYS) <= config_keys


def test_print_config_shows_effective_values_and_their_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "protocol: paper\noptim:\n  lr: 0.0001\nmodel:\n  name: resnet50\n  kwargs:\n    layers: [1, 1, 1, 1]\n"
    )
    assert main(["fit", "--config", str(path), "--print-config", "protocol=modern", "trainer.epochs=3"]) == 0
    out = capsys.readouterr().out
    printed = yaml.safe_load(out)  # still YAML: the sources are comments
    cfg = load_config(path, ["protocol=modern", "trainer.epochs=3"])
    assert printed == cfg.to_dict()
    lines: dict[str, str] = {}
    section: list[str] = []
    for line in out.splitlines():  # dotted key of each line, from its indentation
        depth = (len(line) - len(line.lstrip())) // 2
        key = line.split(":")[0].strip()
        section = [*section[:depth], key]
        lines[".".join(section)] = line
    assert lines["optim.lr"].endswith("# protocol modern (command line)") and "0.0005" in lines["optim.lr"]
    assert lines["trainer.epochs"].endswith("# command line")
    assert lines["model.name"].endswith(f"# file {path}")
    assert lines["model.kwargs.layers"].endswith(f"# file {path}")
    assert lines["optim.name"].endswith("# protocol modern (command line)")
    assert lines["trainer.accelerator"].endswith("# default")
    assert lines["protocol"].endswith("# command line")
    # every value line carries a source
    assert all("#" in line for line in out.splitlines() if not line.rstrip().endswith(":"))
