"""The engine's Lightning callbacks: resume points, preemption, validation schedule, timing and the console.

Every hook here has Lightning's exact signature: a callback whose ``on_exception`` itself fails would replace
the run's real exception (a crash in a step, a SIGTERM) with its own ``TypeError``, and the user would see the
wrong error. ``tests/training/test_training_faults.py`` checks that an exception raised anywhere surfaces as itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from landzoo.training import cost as cost_mod
from landzoo.training.signals import request_stop, stop_requested

__all__ = [
    "EpochProgress",
    "LastCheckpoint",
    "PreemptionCheckpoint",
    "TestTimer",
    "ValidationSchedule",
    "route_sigterm",
]


class _FixedCheckpoint(ModelCheckpoint):
    """A checkpoint callback that writes one fixed file when told to, and nothing on Lightning's own triggers.

    It subclasses ``ModelCheckpoint`` only for its place in Lightning's callback order (checkpoint callbacks run
    last, after the selection callback whose updated best score must be part of what is saved); it keeps no
    state of its own in the checkpoint.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(dirpath=Path(path).parent, save_top_k=0, save_last=False, enable_version_counter=False)
        self.path = Path(path)

    @property
    def state_key(self) -> str:
        return type(self).__name__

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        pass

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass


class PreemptionCheckpoint(_FixedCheckpoint):
    """On SIGTERM, every rank saves ``last.ckpt`` at the end of the current training step, then the run stops.

    The request comes from :mod:`landzoo.training.signals` (the engine routes Lightning's SIGTERM handler there,
    so Lightning never stops a run on its own between this check and its own, which would leave no checkpoint).
    It is checked at the end of every training step (any rank's request stops all: they agree by all-reduce;
    in one process it is a flag, no device involved) and at the end of every epoch. A SIGTERM during validation therefore waits for the validation and the
    epoch-end ``last.ckpt`` (a checkpoint taken in the middle of validation would resume with metrics over part
    of the validation set, and so could select another checkpoint). It subclasses ``ModelCheckpoint`` so that
    Lightning runs it after the selection callback and :class:`LastCheckpoint`, whose states it saves.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.saved = False

    @staticmethod
    def _agreed(trainer: L.Trainer) -> bool:
        flag = stop_requested()
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.tensor([1.0 if flag else 0.0], device=trainer.strategy.root_device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            flag = bool(t.item() > 0)
        return flag

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._agreed(trainer):
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved = True
            raise SIGTERMException()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._agreed(trainer):  # LastCheckpoint has just written the epoch-end resume point
            self.saved = True
            raise SIGTERMException()


def route_sigterm(trainer: L.Trainer) -> None:
    """Make Lightning's SIGTERM handler record a stop request (:mod:`.signals`) instead of stopping by itself.

    Lightning would raise at its own check after the step, racing :class:`PreemptionCheckpoint` (a signal that
    arrives between the two stops the run without a checkpoint); its launcher still forwards the signal to the
    processes it started.
    """
    connector = trainer._signal_connector

    def notify(signum: Any, frame: Any) -> None:
        launcher = trainer.strategy.launcher
        if launcher is not None and not stop_requested():
            launcher.kill(signum)
        request_stop()

    connector._sigterm_notifier_fn = notify  # type: ignore[method-assign]


class LastCheckpoint(_FixedCheckpoint):
    """Writes ``last.ckpt`` at the end of every epoch and every N optimiser steps: the resume point.

    (Lightning's ``save_last`` only writes it when a top-k checkpoint was saved in the same step.) It subclasses
    ``ModelCheckpoint`` so that Lightning runs it after the selection callback, whose updated best score is then
    part of the saved state.
    """

    def __init__(self, path: Path, every_n_steps: int | None = None) -> None:
        super().__init__(path)
        self.every = every_n_steps

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every and trainer.global_step % self.every == 0 and trainer.global_step != self._last_global_step_saved:
            self._last_global_step_saved = trainer.global_step
            trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)


class ValidationSchedule(L.Callback):
    """Validate every ``every`` epochs **and** at the last epoch (Lightning alone skips a last epoch off the grid).

    The selected checkpoint must be able to be the final one, and a run shorter than ``every`` epochs must
    still validate once. Lightning reads ``check_val_every_n_epoch`` during the epoch, so it is set per epoch.
    """

    def __init__(self, every: int) -> None:
        self.every = max(1, int(every))

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        due = epoch % self.every == 0 or epoch == trainer.max_epochs
        trainer.check_val_every_n_epoch = 1 if due else epoch + 1  # epoch % (epoch + 1) != 0: no validation


class TestTimer(L.Callback):
    """End-to-end inference rate of the test pass: store -> device -> model -> probabilities, all ranks."""

    def __init__(self) -> None:
        self.images = 0
        self.seconds = 0.0
        self._t0 = 0.0

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cost_mod.sync(pl_module.device)
        self.images = 0
        self._t0 = time.perf_counter()

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self.images += int(batch["label"].shape[0])

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        cost_mod.sync(pl_module.device)
        self.seconds = time.perf_counter() - self._t0

    def summary(self, trainer: L.Trainer) -> dict[str, Any]:
        images = cost_mod._all_reduce(float(self.images), trainer, "sum")
        seconds = cost_mod._all_reduce(self.seconds, trainer, "max")
        return {"test_patches": int(images), "infer_img_s_e2e": images / seconds if seconds > 0 else None}


class EpochProgress(L.Callback):
    """The console of a training run, the same for fit, benchmark and transfer.

    One tqdm bar per run (label, epoch, loss, ETA over all epochs), and after every validation one line with
    the validation loss and micro/macro F1 (accuracy for single-label tasks), printed with or without the bar
    (``--no-progress`` keeps the lines: one per validated epoch), on rank 0 only.
    """

    def __init__(self, label: str, *, bar: bool = True) -> None:
        self.label = label
        self.show_bar = bar
        self.bar: Any = None

    def _write(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and self.show_bar:
            from tqdm.auto import tqdm

            total = int(trainer.num_training_batches * trainer.max_epochs)
            done = int(trainer.num_training_batches * trainer.current_epoch)
            self.bar = tqdm(total=total, initial=done, desc=self.label, unit="batch", dynamic_ncols=True)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.bar is not None:
            self.bar.set_description(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
            # reading the loss waits for the device: only on the steps Lightning logs (it waits there anyway)
            loss = trainer.callback_metrics.get("train/loss_step") if self._log_step(trainer, batch_idx) else None
            if loss is not None:
                self.bar.set_postfix(loss=f"{float(loss):.4f}", refresh=False)
            self.bar.update(1)

    @staticmethod
    def _log_step(trainer: L.Trainer, batch_idx: int) -> bool:
        return batch_idx == 0 or (batch_idx + 1) % max(1, int(trainer.log_every_n_steps)) == 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        m = trainer.callback_metrics
        keys = ("f1_micro", "f1_macro") if "val/f1_micro" in m else ("accuracy", "f1_macro")
        parts = [f"{k} {float(m[f'val/{k}']):.4f}" for k in keys if f"val/{k}" in m]
        loss = m.get("val/loss")
        if loss is not None:
            parts.insert(0, f"loss {float(loss):.4f}")
        self._write(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: val " + ", ".join(parts))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
