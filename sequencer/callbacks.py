"""The Keras callbacks of a training run: what each epoch records and decides.

Keras' own CSVLogger and TensorBoard callbacks write `metrics.csv` and the event files; these add
what they lack. `EpochStats` puts the learning rate, the epoch's seconds and samples per second
into the epoch's logs, so that every later callback records them. `RunState` keeps the best model,
the last checkpoint, early stopping and the learning-rate schedule, with counters that are saved
in each checkpoint so that a resumed run decides exactly as an uninterrupted one would.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import keras
from matplotlib.figure import Figure

from sequencer.config import Config
from sequencer.runs import MODEL_FILE, SUMMARY_FILE, save_checkpoint, save_model, temporary_path, write_json

log = logging.getLogger(__name__)


class EpochStats(keras.callbacks.Callback):
    """Adds `learning_rate`, `epoch_seconds` and `samples_per_second` to each epoch's logs, and logs the epoch.

    The epoch's line is logged at DEBUG level: train.log gets it, the console has Keras' progress bar.
    """

    def __init__(self, train_pairs: int, epochs: int):
        super().__init__()
        self.train_pairs = train_pairs
        self.epochs = epochs
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self._started
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch_seconds"] = seconds
        logs["samples_per_second"] = self.train_pairs / seconds
        values = "  ".join(f"{name} {value:.4g}" for name, value in logs.items())
        log.debug("epoch %d/%d: %s", epoch + 1, self.epochs, values)


def initial_state() -> dict:
    """The training state of a run that has not finished an epoch."""
    return {
        "epochs_completed": 0,
        "best_epoch": 0,
        "best_value": None,
        "best_metrics": {},
        "plateau_epochs": 0,
        "stopped_early": False,
        "seconds": 0.0,
    }


class RunState(keras.callbacks.Callback):
    """Best model, last checkpoint, early stopping and learning-rate reduction on a plateau of `monitor`."""

    def __init__(self, run_dir: Path, config: Config, state: dict, data_summary: dict):
        super().__init__()
        self.run_dir = run_dir
        self.config = config
        self.state = state
        self.data_summary = data_summary
        mode = config.mode if config.mode != "auto" else ("max" if config.monitor.endswith("accuracy") else "min")
        self.better = (lambda new, old: new > old) if mode == "max" else (lambda new, old: new < old)

    def on_epoch_end(self, epoch, logs=None):
        config, state = self.config, self.state
        value = float(logs[config.monitor])
        if state["best_value"] is None or self.better(value, state["best_value"]):
            save_model(self.model, self.run_dir / MODEL_FILE)
            metrics = {name: float(number) for name, number in logs.items()}
            state.update(best_epoch=epoch + 1, best_value=value, best_metrics=metrics, plateau_epochs=0)
        else:
            state["plateau_epochs"] += 1
            if config.lr_patience and state["plateau_epochs"] >= config.lr_patience:
                learning_rate = logs["learning_rate"] * config.lr_factor
                self.model.optimizer.learning_rate = learning_rate
                state["plateau_epochs"] = 0
                log.info(
                    "no better %s for %d epochs: learning rate now %.4g",
                    config.monitor,
                    config.lr_patience,
                    learning_rate,
                )
        state["epochs_completed"] = epoch + 1
        state["seconds"] += logs["epoch_seconds"]
        if config.early_stopping_patience and epoch + 1 - state["best_epoch"] >= config.early_stopping_patience:
            self.model.stop_training = True
            state["stopped_early"] = True
            log.info("no better %s for %d epochs: stopping early", config.monitor, config.early_stopping_patience)
        save_checkpoint(self.run_dir, self.model, state)
        self.write_summary(interrupted=False)

    def write_summary(self, interrupted: bool) -> None:
        """summary.json: the data, the epochs done, the best epoch and its metrics, the time."""
        state = self.state
        write_json(
            self.run_dir / SUMMARY_FILE,
            {
                **self.data_summary,
                "monitor": self.config.monitor,
                "epochs_completed": state["epochs_completed"],
                "best_epoch": state["best_epoch"],
                "best_metrics": state["best_metrics"],
                "stopped_early": state["stopped_early"],
                "interrupted": interrupted,
                "seconds": round(state["seconds"], 3),
            },
        )


class CurvePlot(keras.callbacks.Callback):
    """Redraws the loss and accuracy curves from `metrics.csv` after every epoch."""

    def __init__(self, metrics_file: Path, plot_file: Path):
        super().__init__()
        self.metrics_file = metrics_file
        self.plot_file = plot_file

    def on_epoch_end(self, epoch, logs=None):
        plot_metrics(self.metrics_file, self.plot_file)


def plot_metrics(metrics_file: Path, plot_file: Path) -> None:
    """A PNG of loss and accuracy per epoch, training and validation, written atomically."""
    with open(metrics_file, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axes, metric in zip(figure.subplots(1, 2), ("loss", "accuracy")):
        for name, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if rows and name in rows[0]:
                axes.plot(epochs, [float(row[name]) for row in rows], marker=".", label=label)
        axes.set(title=metric, xlabel="epoch")
        if axes.lines:
            axes.legend()
    temporary = temporary_path(plot_file)
    figure.savefig(temporary, format="png", dpi=80)
    temporary.replace(plot_file)
