"""The Keras callbacks of a training run: what each epoch records and decides.

Keras' own CSVLogger and TensorBoard callbacks write `metrics.csv` and the event files (subclassed
only to number epochs from 1); these add what they lack. `ValidationChrF` translates validation
pairs every `eval_every` epochs.
`EpochStats` puts the learning rate, the epoch's seconds and samples per second into the epoch's
logs, so that every later callback records them. `RunState` keeps the best model, the last
checkpoint, early stopping and the learning-rate schedule, with counters (`TrainingState`) that
are saved in each checkpoint so that a resumed run decides exactly as an uninterrupted one would.
`MovingAverageWeights` puts the moving average of `ema_decay` in the model to validate and save
it (the snapshots for averaging are `averaging.WeightSnapshots`). `EpochLine` writes each
epoch's line. Epochs are numbered from 1 in every file and message.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import keras
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sequencer.averaging import BEST_EPOCH_FILE
from sequencer.checkpoints import MODEL_FILE, TrainingState, save_checkpoint, save_model
from sequencer.config import Config
from sequencer.corpus import Corpus
from sequencer.data import pad_ids
from sequencer.evaluation import ReferenceSet, score
from sequencer.files import atomic_path, read_json, write_json
from sequencer.runs import SUMMARY_FILE
from sequencer.search import GreedyDecoder

log = logging.getLogger(__name__)


class EpochStats(keras.callbacks.Callback):
    """Adds `learning_rate`, `epoch_seconds` and `samples_per_second` to each epoch's logs.

    Samples are training pairs: the epoch's batches times `pairs_per_batch`, the average of a pass.
    """

    def __init__(self, pairs_per_batch: float):
        super().__init__()
        self.pairs_per_batch = pairs_per_batch
        self._started = 0.0
        self._batches = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.monotonic()
        self._batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self._started
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["epoch_seconds"] = seconds
        logs["samples_per_second"] = self._batches * self.pairs_per_batch / seconds


class EpochLine(keras.callbacks.Callback):
    """One line per epoch with its logs, once the epoch is saved: at DEBUG level, for train.log, and
    to `echo` if given (the console's line per epoch when there is no progress bar)."""

    def __init__(self, epochs: int, echo: Callable[[str], None] | None = None):
        super().__init__()
        self.epochs = epochs
        self.echo = echo

    def on_epoch_end(self, epoch, logs=None):
        line = f"epoch {epoch + 1}/{self.epochs}: " + "  ".join(f"{name} {value:.4g}" for name, value in logs.items())
        log.debug("%s", line)
        if self.echo:
            self.echo(line)


class ValidationChrF(keras.callbacks.Callback):
    """Every `every` epochs, translates validation pairs greedily and adds their chrF as `val_chrf`.

    On other epochs `val_chrf` is NaN, so that every row of metrics.csv has the column. Every
    target of a validation source sentence is a reference for it.
    """

    def __init__(self, corpus: Corpus, config: Config, every: int):
        super().__init__()
        self.config, self.every, self.longest_target = config, every, corpus.max_target_len
        sources = [corpus.source_vocab.decode(ids) for ids in corpus.val_source][: config.eval_pairs]
        targets = [corpus.target_vocab.decode(ids) for ids in corpus.val_target][: config.eval_pairs]
        self.references = ReferenceSet.from_pairs(list(zip(sources, targets)))
        self.source_ids = pad_ids([corpus.source_vocab.encode(source) for source in self.references.sources])
        self.target_vocab = corpus.target_vocab
        self.decoder: GreedyDecoder | None = None

    def on_train_begin(self, logs=None):
        self.decoder = GreedyDecoder(self.model)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            logs["val_chrf"] = float("nan")
            return
        logs["val_chrf"] = self.chrf(self.decoder)

    def chrf(self, decoder: GreedyDecoder) -> float:
        """The chrF of `decoder`'s greedy translations of the validation pairs."""
        max_len, min_len = decoder.model.decoding_lengths(self.config, self.longest_target)
        output = decoder(self.source_ids, max_len, min_len).ids[:, 0]
        hypotheses = [self.target_vocab.decode(ids) for ids in output]
        return score(hypotheses, self.references.references)["chrf"]


class RunState(keras.callbacks.Callback):
    """Best model, last checkpoint, early stopping and learning-rate reduction on a plateau of
    `monitor`; the batches trained (where a resumed run takes up the stream), and the stop within
    an epoch at `train_steps` updates or `max_minutes` of training, counted over every resumption.
    Keras ends such an epoch early, validates it and calls `on_epoch_end`, which saves it."""

    def __init__(self, run_dir: Path, config: Config, state: TrainingState, data_summary: dict, keep: int = 1):
        super().__init__()
        self.run_dir = run_dir
        self.keep = keep  # epoch checkpoints kept: the newest, or those to average
        self.config = config
        self.state = state
        self.data_summary = data_summary
        maximise = config.monitor_mode == "max"
        self.better = (lambda new, old: new > old) if maximise else (lambda new, old: new < old)
        # A resumed run's record of its last averaging holds until a better epoch replaces model.keras.
        summary = run_dir / SUMMARY_FILE
        self.averaging = read_json(summary).get("averaging") if summary.is_file() else None
        self._epoch_started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        config, state = self.config, self.state
        state.batches += 1
        if state.batches % config.accumulate_steps:  # stop only after an update
            return
        reached = ""
        if config.train_steps and state.batches // config.accumulate_steps >= config.train_steps:
            reached = f"train_steps={config.train_steps}"
        seconds = state.seconds + time.monotonic() - self._epoch_started
        if config.max_minutes and seconds >= config.max_minutes * 60:
            reached = f"max_minutes={config.max_minutes:g}"
        if reached and not self.model.stop_training:
            self.model.stop_training = True
            log.info("%s reached in epoch %d: stopping at its end, now", reached, state.epochs_completed + 1)

    def on_epoch_end(self, epoch, logs=None):
        config, state = self.config, self.state
        value = float(logs[config.monitor])
        if math.isnan(value):  # val_chrf on an epoch without evaluation: nothing to compare
            if state.best_value is None:
                save_model(self.model, self.run_dir / MODEL_FILE)  # something to predict with meanwhile
        elif state.best_value is None or self.better(value, state.best_value):
            save_model(self.model, self.run_dir / MODEL_FILE)
            (self.run_dir / BEST_EPOCH_FILE).unlink(missing_ok=True)  # model.keras holds no average any more
            self.averaging = None
            state.best_epoch, state.best_value, state.plateau_epochs = epoch + 1, value, 0
            # NaN (val_chrf on an epoch without evaluation) is not JSON: null instead.
            state.best_metrics = {name: None if math.isnan(float(v)) else float(v) for name, v in logs.items()}
        else:
            state.plateau_epochs += 1
            if config.lr_patience and state.plateau_epochs >= config.lr_patience:
                learning_rate = logs["learning_rate"] * config.lr_factor
                self.model.optimizer.learning_rate = learning_rate
                state.plateau_epochs = 0
                log.info(
                    "no better %s for %d epochs: learning rate now %.4g",
                    config.monitor,
                    config.lr_patience,
                    learning_rate,
                )
        state.epochs_completed = epoch + 1
        state.seconds += logs["epoch_seconds"]
        state.updates = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if config.early_stopping_patience and epoch + 1 - state.best_epoch >= config.early_stopping_patience:
            self.model.stop_training = True
            state.stopped_early = True
            log.info("no better %s for %d epochs: stopping early", config.monitor, config.early_stopping_patience)
        save_checkpoint(self.run_dir, self.model, state, keep=self.keep)
        self.write_summary(interrupted=False)

    def write_summary(self, interrupted: bool) -> None:
        """summary.json: the data, the epochs done, the best epoch and its metrics, the time."""
        state = self.state
        write_json(
            self.run_dir / SUMMARY_FILE,
            {
                **self.data_summary,
                "monitor": self.config.monitor,
                "epochs_completed": state.epochs_completed,
                "best_epoch": state.best_epoch,
                "best_metrics": state.best_metrics,
                "stopped_early": state.stopped_early,
                "resumed_after": state.resumed_after,
                "interrupted": interrupted,
                "seconds": round(state.seconds, 3),
                "updates": state.updates,
                "batches": state.batches,
                **({"averaging": self.averaging} if self.averaging else {}),
            },
        )


class MovingAverageWeights(keras.callbacks.Callback):
    """With `ema_decay`: the optimizer's moving average of the weights is in the model while it is
    validated and from the end of each epoch to the start of the next, so that the val_ metrics,
    val_chrf, model.keras and the checkpoints are the average's; each epoch trains the weights.

    Keras' SwapEMAWeights(swap_on_epoch=True) with two changes, both for exact resumption. A
    checkpoint holds the average in the model and the trained weights in the optimizer's slots, so
    a run resumed from one starts with the average in the model (`resumed`), and swaps it out as
    its first epoch begins. And the last epoch does not overwrite the trained weights with the
    average (as Keras does so that the model `fit` leaves holds it), so that a finished run can
    go on with more epochs as if it had never stopped; nothing here uses the model `fit` leaves.
    """

    def __init__(self, resumed: bool):
        super().__init__()
        self.average_in_model = resumed

    def on_epoch_begin(self, epoch, logs=None):
        self._hold_average(False)

    def on_test_begin(self, logs=None):  # validation inside `fit`, before the epoch ends
        self._hold_average(True)

    def on_test_end(self, logs=None):
        self._hold_average(False)

    def on_epoch_end(self, epoch, logs=None):
        self._hold_average(True)

    def _hold_average(self, average: bool) -> None:
        if self.average_in_model != average:
            swap_moving_average(self.model)
            self.average_in_model = average


def swap_moving_average(model: keras.Model) -> None:
    """Exchange the model's trainable weights and the optimizer's moving average of them, in place.

    Keras 3.15 has no public function for it: its SwapEMAWeights callback (keras-team/keras#18978)
    does it in the private method `_swap_variables`, which reads the optimizer's private
    `_model_variables_moving_average` and updates under the distribution strategy. This is the
    one place that calls it; tests/test_callbacks.py pins what it does, so that a Keras release
    that moves it fails there.
    """
    swapper = keras.callbacks.SwapEMAWeights()
    swapper.set_model(model)
    swapper._swap_variables()


class EpochCSVLogger(keras.callbacks.CSVLogger):
    """Keras' CSVLogger, numbering epochs from 1 as the log, the summary and the plot do."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback, its epoch summaries numbered from 1 as in metrics.csv."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch + 1, logs)


class CurvePlot(keras.callbacks.Callback):
    """Redraws the curves from `metrics.csv` after every epoch, marking the best epoch and the resumptions."""

    def __init__(self, metrics_file: Path, plot_file: Path, state: TrainingState):
        super().__init__()
        self.metrics_file = metrics_file
        self.plot_file = plot_file
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        plot_metrics(self.metrics_file, self.plot_file, self.state.best_epoch, self.state.resumed_after)


def plot_metrics(metrics_file: Path, plot_file: Path, best_epoch: int = 0, resumed_after: Sequence[int] = ()) -> None:
    """A PNG of loss, accuracy (and chrF) per epoch, training and validation, written atomically.

    A dotted line marks the best epoch, a dashed one each point where the run was resumed.
    """
    with open(metrics_file, newline="", encoding="utf-8") as stream:
        figure = curves_figure(list(csv.DictReader(stream)), best_epoch, resumed_after)
    with atomic_path(plot_file) as temporary:
        figure.savefig(temporary, format="png", dpi=80)


def curves_figure(rows: list[dict[str, str]], best_epoch: int, resumed_after: Sequence[int]) -> Figure:
    """The figure of `plot_metrics`, from the rows of metrics.csv: one panel per metric, integer epoch ticks."""
    epochs = [int(row["epoch"]) for row in rows]
    metrics = ["loss", "accuracy"] + (["chrf"] if rows and "val_chrf" in rows[0] else [])
    figure = Figure(figsize=(5 * len(metrics), 4), layout="constrained")
    for axes, metric in zip(figure.subplots(1, len(metrics)), metrics):
        for name, label in ((metric, "training"), (f"val_{metric}", "validation")):
            if rows and name in rows[0]:
                values = [float(row[name]) if row[name] not in ("", "NA") else math.nan for row in rows]
                shown = [(epoch, value) for epoch, value in zip(epochs, values) if not math.isnan(value)]
                if shown:
                    axes.plot(*zip(*shown), marker=".", label=label)
        if best_epoch:
            axes.axvline(best_epoch, color="tab:green", linestyle=":", label=f"best epoch ({best_epoch})")
        for number, epoch in enumerate(resumed_after):
            axes.axvline(epoch + 0.5, color="grey", linestyle="--", label="resumed" if number == 0 else None)
        axes.set(title=metric, xlabel="epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch: the tick 1
        if axes.lines:
            axes.legend()
    return figure
