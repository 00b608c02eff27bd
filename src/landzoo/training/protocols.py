"""Training protocols as data: the defaults a config starts from before its own keys apply.

A protocol is a nested dict with keys of :class:`landzoo.training.config.TrainConfig`; both protocols set the
same keys (:data:`PROTOCOL_KEYS`), so switching protocol switches all of them. Precedence
(:mod:`landzoo.training.config`): defaults < protocol < YAML file < protocol named on the command line <
command-line ``key=value``, so a config file only writes what differs from its protocol, a protocol chosen on
the command line replaces the file's protocol settings, and the protocol is named in every run's resolved
``config.yaml``.

``paper`` reproduces the reference code (paper.md section 4):

* binary cross-entropy on N sigmoid outputs (no label smoothing, no weight decay: the reference code
  declared L2 regularisers but never added them to the loss);
* Adam with Keras' defaults (betas 0.9/0.999, **eps 1e-7**), lr 1e-4 (HEAD's WRN config, batch 128);
* lr x number of processes (Horovod-style linear scaling with the world size);
* 30 epochs, one x0.1 step decay at 90 % of training (epoch 27 of 30, as the README's config);
* model selection on validation micro-F1, seed 42, no augmentation, fp32.

``transfer`` is the fine-tuning recipe of ``landzoo transfer`` (:mod:`landzoo.transfer`), so a transfer run is
an ordinary engine run: AdamW (weight decay 1e-4 on weights of two or more dimensions), lr 1e-3 without
scaling, cosine decay to zero over all steps without warm-up, dihedral augmentation, batch 64, 30 epochs.
``landzoo fit protocol=transfer model.init_from=CKPT`` fine-tunes a checkpoint of the same contract with it.

``modern`` is what one would do today: AdamW (wd 0.05), linear warm-up then cosine decay, a large global batch
(1024: the resident data path keeps a GPU busy with it) and the lr scaled linearly with it (5e-4 per 256
patches, so 2e-3 at 1024; Goyal et al.'s rule, with the warm-up that makes it hold), bf16 autocast where the device supports it (fp32 on
CPU), random flips / 90-degree rotations per sample, optional label smoothing, channels_last and
``torch.compile`` on CUDA only (on CPU they cost more than they give for these small models).
"""

from __future__ import annotations

import copy
from types import MappingProxyType
from typing import Any, Final

PAPER: Final[dict[str, Any]] = {
    "protocol": "paper",
    "seed": 42,
    "augment": "none",
    "select_metric": "f1_micro",
    "loss": {"label_smoothing": 0.0},
    "optim": {
        "name": "adam",
        "lr": 1e-4,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
        "eps": 1e-7,
        "lr_scaling": "processes",
        "reference_batch": 256,
    },
    "schedule": {"name": "step", "decay_at": [0.9], "gamma": 0.1, "warmup_epochs": 0.0, "min_lr_ratio": 0.0},
    "trainer": {"epochs": 30, "precision": "32-true", "compile": False, "channels_last": False},
    "data": {"batch_size": 128},
}

MODERN: Final[dict[str, Any]] = {
    "protocol": "modern",
    "seed": 42,
    "augment": "dihedral",
    "select_metric": "f1_macro",
    "loss": {"label_smoothing": 0.0},
    "optim": {
        "name": "adamw",
        "lr": 5e-4,
        "weight_decay": 0.05,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "lr_scaling": "linear",
        "reference_batch": 256,
    },
    "schedule": {"name": "cosine", "decay_at": [0.9], "gamma": 0.1, "warmup_epochs": 1.0, "min_lr_ratio": 0.01},
    "trainer": {"epochs": 30, "precision": "auto", "compile": "auto", "channels_last": "auto"},
    "data": {"batch_size": 1024},
}

TRANSFER: Final[dict[str, Any]] = {
    "protocol": "transfer",
    "seed": 0,
    "augment": "dihedral",
    "select_metric": "f1_micro",
    "loss": {"label_smoothing": 0.0},
    "optim": {
        "name": "adamw",
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "betas": [0.9, 0.999],
        "eps": 1e-8,
        "lr_scaling": "none",
        "reference_batch": 256,
    },
    "schedule": {"name": "cosine", "decay_at": [0.9], "gamma": 0.1, "warmup_epochs": 0.0, "min_lr_ratio": 0.0},
    "trainer": {"epochs": 30, "precision": "auto", "compile": False, "channels_last": False},
    "data": {"batch_size": 64},
}

#: Protocol name -> its defaults (read-only; :func:`protocol_defaults` hands out copies).
PROTOCOLS: Final = MappingProxyType({"paper": PAPER, "modern": MODERN, "transfer": TRANSFER})


def _keys(d: dict[str, Any], prefix: str = "") -> tuple[str, ...]:
    return tuple(
        k for key, v in d.items() for k in (_keys(v, f"{prefix}{key}.") if isinstance(v, dict) else (f"{prefix}{key}",))
    )


#: The dotted keys every protocol sets (a protocol named on the command line sets all of them over the file).
PROTOCOL_KEYS: Final = _keys(PAPER)
assert all(set(_keys(p)) == set(PROTOCOL_KEYS) for p in PROTOCOLS.values()), "protocols must set the same keys"


def protocol_defaults(name: str) -> dict[str, Any]:
    """A deep copy of a protocol's defaults; an unknown name raises :class:`ConfigError`."""
    from landzoo.training.config import ConfigError

    try:
        return copy.deepcopy(PROTOCOLS[name])
    except KeyError:
        raise ConfigError(f"unknown protocol {name!r}; known protocols: {', '.join(PROTOCOLS)}") from None
