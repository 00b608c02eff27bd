"""Config loading: merge order, strict keys, types, choices, overrides, scaling, and the shipped YAML files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from landzoo.cli import main
from landzoo.training.config import ConfigError, TrainConfig, load_config, parse_overrides, resolve_scaling
from landzoo.training.protocols import PROTOCOLS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").rglob("*.yaml"))


def _write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_paper_protocol_is_the_reference_setup() -> None:
    cfg = load_config(None, [])
    assert cfg.protocol == "paper"
    # paper.md section 4: Adam with Keras defaults, lr x workers, 30 epochs, x0.1 late, micro-F1, seed 42
    assert (cfg.optim.name, cfg.optim.eps, cfg.optim.betas, cfg.optim.weight_decay) == ("adam", 1e-7, [0.9, 0.999], 0.0)
    assert cfg.optim.lr_scaling == "processes"
    assert cfg.trainer.epochs == 30 and cfg.schedule.name == "step" and cfg.schedule.gamma == 0.1
    assert int(cfg.schedule.decay_at[0] * cfg.trainer.epochs) == 27
    assert cfg.select_metric == "f1_micro" and cfg.seed == 42 and cfg.augment == "none"
    assert cfg.loss.label_smoothing == 0.0 and cfg.trainer.precision == "32-true"


def test_modern_protocol() -> None:
    cfg = load_config(None, ["protocol=modern"])
    assert (cfg.optim.name, cfg.schedule.name, cfg.augment, cfg.trainer.precision) == (
        "adamw",
        "cosine",
        "dihedral",
        "auto",
    )
    assert cfg.schedule.warmup_epochs > 0 and cfg.optim.weight_decay > 0


def test_merge_order_defaults_protocol_file_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, {"protocol": "modern", "optim": {"lr": 0.01}, "trainer": {"epochs": 7}})
    cfg = load_config(path, ["trainer.epochs=3", "model.kwargs.width=8"])
    assert cfg.optim.lr == 0.01  # file beats protocol
    assert cfg.optim.name == PROTOCOLS["modern"]["optim"]["name"]  # protocol beats defaults
    assert cfg.trainer.epochs == 3  # override beats file
    assert cfg.model.kwargs == {"width": 8}
    assert cfg.data.num_workers == TrainConfig().data.num_workers  # untouched default
    # an override of the protocol switches the defaults underneath the file
    assert load_config(path, ["protocol=paper"]).optim.name == "adam"
    # architecture options merge key by key too: an override adds to the file's, it does not replace them
    path = _write(tmp_path, {"model": {"name": "resnet50", "kwargs": {"layers": [1, 1, 1, 1], "stem_width": 16}}})
    cfg = load_config(path, ["model.kwargs.stem_width=8"])
    assert cfg.model.kwargs == {"layers": [1, 1, 1, 1], "stem_width": 8}


@pytest.mark.parametrize(
    ("data", "overrides", "key", "valid"),
    [
        ({"trainer": {"epoch": 3}}, [], "'trainer.epoch'", "epochs"),
        ({}, ["optim.learning_rate=0.1"], "'optim.learning_rate'", "lr_scaling"),
        ({"modle": {"name": "x"}}, [], "'modle'", "model"),
    ],
)
def test_unknown_key_names_the_key_and_the_valid_ones(tmp_path: Path, data, overrides, key, valid) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, data), overrides)
    msg = str(err.value)
    assert "\n" not in msg and key in msg and valid in msg and "valid keys" in msg


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("trainer.epochs=two", "must be an integer"),
        ("trainer.epochs=0", "at least 1"),
        ("optim.lr=-1", "must be positive"),
        ("optim.name=lamb", "choose one of adam, adamw, sgd"),
        ("augment=mixup", "choose one of none, dihedral"),
        ("select_metric=accuracy", "select_metric"),
        ("loss.label_smoothing=1.5", "label_smoothing"),
        ("data.mode=device", "num_workers=0"),
        ("data.copy_threads=0", "data.copy_threads must be at least 1"),
        ("schedule.decay_at=[1.5]", "fractions"),
        ("epochs", "key=value"),
    ],
)
def test_bad_values_are_one_line_errors(override: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_yaml_scientific_notation_and_override_parsing() -> None:
    assert parse_overrides(["a.b=1e-4", "c=[0.5, 0.75]", "d=true", "e=", "f=text"]) == {
        "a": {"b": "1e-4"},
        "c": [0.5, 0.75],
        "d": True,
        "e": None,
        "f": "text",
    }
    assert load_config(None, ["optim.lr=1e-4"]).optim.lr == pytest.approx(1e-4)


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = load_config(None, ["protocol=modern", "trainer.devices=2", "model.kwargs.width=4"])
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path, []) == cfg


@pytest.mark.parametrize(
    ("rule", "world", "expected_lr"),
    [("processes", 4, 4e-4), ("linear", 4, 1e-4 * 256 / 256), ("none", 4, 1e-4)],
)
def test_scaling_rules(rule: str, world: int, expected_lr: float) -> None:
    cfg = load_config(
        None, [f"optim.lr_scaling={rule}", "optim.lr=1e-4", "data.batch_size=256", "optim.reference_batch=256"]
    )
    s = resolve_scaling(cfg, world)
    assert s.global_batch == 256 and s.per_device_batch == 256 // world and s.world_size == world
    assert s.lr_effective == pytest.approx(expected_lr)
    assert str(world) in s.describe() and "global batch 256" in s.describe()


def test_linear_rule_follows_the_global_batch_not_the_process_count() -> None:
    cfg = load_config(
        None, ["optim.lr_scaling=linear", "optim.lr=1e-3", "data.batch_size=512", "optim.reference_batch=256"]
    )
    assert resolve_scaling(cfg, 1).lr_effective == resolve_scaling(cfg, 8).lr_effective == pytest.approx(2e-3)


def test_global_batch_must_split_over_processes_and_accumulation() -> None:
    cfg = load_config(None, ["data.batch_size=100", "trainer.accumulate=3"])
    with pytest.raises(ConfigError, match="does not split over 2 process"):
        resolve_scaling(cfg, 2)
    assert resolve_scaling(load_config(None, ["data.batch_size=96", "trainer.accumulate=3"]), 2).per_device_batch == 16


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_shipped_configs_load(path: Path) -> None:
    cfg = load_config(path, [])
    assert cfg.model.name
    if "bigearthnet-v1" in path.parts and cfg.protocol == "paper":
        assert path.stem == cfg.model.name  # one file per paper experiment, named after its model


def test_shipped_config_model_names_exist() -> None:
    models = pytest.importorskip("landzoo.models")
    from landzoo.training.run import check_model_names

    names = [load_config(p, []).model.name for p in CONFIGS]
    check_model_names(names)
    assert models is not None


def test_cli_print_config_and_bad_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--print-config", "trainer.epochs=2"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["epochs"] == 2 and printed["protocol"] == "paper"
    assert main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--print-config", "trainer.epoch=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown config key 'trainer.epoch'" in err[0]


def test_micro_batches_of_one_accumulation_window_draw_different_randomness() -> None:
    from landzoo.training.module import LandCoverModule

    cfg = load_config(None, ["model.name=mixer_tiny_p12_120", "trainer.accumulate=2"])
    module = LandCoverModule(cfg.to_dict())
    seeds = []
    for batch_idx in range(4):  # no trainer: global_step stays 0, as within one accumulation window
        module.on_train_batch_start(None, batch_idx)
        seeds.append(module._step_seed())
    assert seeds[0] != seeds[1] and seeds[0] == seeds[2] and seeds[1] == seeds[3]


def test_shipped_configs_are_the_checkout_configs_and_resolve_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The package ships configs/ (src/landzoo/configs links to it): every file, reachable by name from anywhere."""
    from landzoo.training.config import CONFIG_DIR, resolve_config

    shipped = sorted(p.relative_to(CONFIG_DIR) for p in CONFIG_DIR.rglob("*.yaml"))
    assert shipped == [p.relative_to(REPO / "configs") for p in CONFIGS] and len(shipped) > 40
    monkeypatch.chdir(tmp_path)  # outside the checkout
    wanted = REPO / "configs" / "bigearthnet-v1" / "wrn_eca_b0.yaml"
    for name in (
        "bigearthnet-v1/wrn_eca_b0",
        "bigearthnet-v1/wrn_eca_b0.yaml",
        "configs/bigearthnet-v1/wrn_eca_b0.yaml",
    ):
        assert resolve_config(name).samefile(wanted), name
    (tmp_path / "mine.yaml").write_text("trainer:\n  epochs: 3\n")
    assert resolve_config("mine.yaml") == Path("mine.yaml")  # a file the user has wins
    with pytest.raises(ConfigError, match="nor is it one of the shipped configs"):
        resolve_config("bigearthnet-v1/wrn_eca_b9")
    assert main(["fit", "--config", "bigearthnet-v1/wrn_eca_b0", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["name"] == "wrn_eca_b0"
