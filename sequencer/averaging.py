"""Checkpoint averaging, the whole story: what is kept, the mean, the comparison, the files.

Averaging the weights of a run's last checkpoints (Vaswani et al., 2017, averaged the last 5 or
20; OpenNMT-tf recommends it over ensembles) evens out the noise of the last updates at no cost
in training time, and gives one model, as fast to decode as any other. With `average_last` a
run keeps its last epoch checkpoints; with `average_every` too, snapshots of the weights taken
every that many optimizer updates instead (`WeightSnapshots`), so that the average spans the
end of a short run. At the end of training (or with scripts/average.py, or for the best member
of tune.py's population) `average_run` averages them and keeps the better of the average and
the best epoch in model.keras, by the validation pairs.

    models/<run>/checkpoints/updates/epoch-E-update-U.npz   the weights after update U, during epoch E
    models/<run>/averaged.keras or best-epoch.keras          the model that model.keras did not take

Only models of one architecture can be averaged: the weights are matched by position and shape.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sequencer.checkpoints import (
    CHECKPOINTS_DIR,
    MODEL_FILE,
    checkpoint_folders,
    epoch_of,
    last_checkpoint_epoch,
    load_model,
    new_model,
    save_model,
)
from sequencer.config import Config
from sequencer.errors import DataError
from sequencer.files import atomic_path, write_json
from sequencer.text import first_line

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from sequencer.corpus import Corpus

log = logging.getLogger(__name__)

AVERAGED_FILE = "averaged.keras"  # the average, when it did not replace model.keras
BEST_EPOCH_FILE = "best-epoch.keras"  # the best epoch's model, when the average replaced it in model.keras
SNAPSHOTS_DIR = "updates"  # in checkpoints/: the weights every average_every updates, as NumPy arrays
_SNAPSHOT_NAME = re.compile(r"epoch-\d+-update-\d+\.npz")


def average_weights(checkpoints: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
    """The mean of each weight over `checkpoints` ({name: a model's `get_weights()`}, the names for messages)."""
    names = list(checkpoints)
    reference = [weight.shape for weight in checkpoints[names[0]]]
    total = [np.zeros(shape, np.float64) for shape in reference]
    for name, weights in checkpoints.items():
        shapes = [weight.shape for weight in weights]
        if shapes != reference:
            raise DataError(
                f"{name} and {names[0]} have different architectures ({len(shapes)} weights of shapes "
                f"{shapes[:3]}... against {len(reference)} of {reference[:3]}...); only one model's checkpoints average"
            )
        for sum_, weight in zip(total, weights):
            sum_ += weight
    dtypes = [weight.dtype for weight in checkpoints[names[0]]]
    return [(sum_ / len(checkpoints)).astype(dtype) for sum_, dtype in zip(total, dtypes)]


# ---- What is kept


def checkpoints_to_keep(config: Config) -> int:
    """Epoch checkpoints a run keeps: the last `average_last` when it averages them, else (as
    with `average_every`, which averages snapshots) the last one, for --resume."""
    return 1 if config.average_every else max(1, config.average_last)


def save_snapshot(run_dir: Path, model: keras.Model, epoch: int, update: int, keep: int) -> None:
    """Save the model's weights (not the optimizer's) after optimizer update `update`, during
    `epoch` (counted from 1), and delete the snapshots before the `keep` newest.

    A snapshot is an .npz file of the arrays of `model.get_weights()`, in order: no pickle, and a
    third of a checkpoint with Adam's state."""
    path = run_dir / CHECKPOINTS_DIR / SNAPSHOTS_DIR / f"epoch-{epoch:04d}-update-{update:08d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, *model.get_weights())
    for old in _snapshots(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def snapshot_files(run_dir: Path) -> list[Path]:
    """The weight snapshots of the epochs up to the last checkpoint, oldest first (those of a later
    epoch were taken during an epoch that was interrupted before its checkpoint)."""
    last = last_checkpoint_epoch(run_dir)
    return [path for path in _snapshots(run_dir) if epoch_of(path) <= last]


def discard_snapshots_after(run_dir: Path, epochs_completed: int) -> None:
    """Delete the snapshots of epochs after `epochs_completed`: a resumed run takes them again."""
    for path in _snapshots(run_dir):
        if epoch_of(path) > epochs_completed:
            path.unlink(missing_ok=True)


def _snapshots(run_dir: Path) -> list[Path]:
    paths = (run_dir / CHECKPOINTS_DIR / SNAPSHOTS_DIR).glob("epoch-*-update-*.npz")
    return sorted(path for path in paths if _SNAPSHOT_NAME.fullmatch(path.name))


class WeightSnapshots:
    """Saves the weights every `every` optimizer updates, keeping the `keep` newest, for `average_last`.

    A run of a few epochs changes much from one epoch checkpoint to the next; snapshots a few
    hundred updates apart let the average span its last stretch only (OpenNMT-tf's
    `save_checkpoints_steps`, fairseq's `--save-interval-updates`). A resumed run first discards
    the snapshots of the epoch it was interrupted in, then takes them again. Keras' ModelCheckpoint
    with `save_freq` does not fit: it counts batches rather than updates, keeps every file, writes
    in place, and its weights files carry the optimizer's variables. `callback()` is what `fit`
    calls (a Keras LambdaCallback, made when training starts, so that this module needs no Keras
    until then: scripts/average.py checks a run with it before TensorFlow starts).
    """

    def __init__(self, run_dir: Path, config: Config, epochs_completed: int):
        self.run_dir = run_dir
        self.every = config.average_every
        self.keep = config.average_last
        self.epochs_completed = epochs_completed
        self.epoch = self.updates = 0  # the epoch in progress and the optimizer's updates, set as training goes

    def callback(self) -> keras.callbacks.Callback:
        import keras

        def on_train_begin(logs):
            discard_snapshots_after(self.run_dir, self.epochs_completed)
            self.updates = _optimizer_updates(callback.model)

        def on_epoch_begin(epoch, logs):
            self.epoch = epoch + 1

        def on_train_batch_end(batch, logs):
            updates = _optimizer_updates(callback.model)
            if updates != self.updates and updates % self.every == 0:
                save_snapshot(self.run_dir, callback.model, self.epoch, updates, self.keep)
            self.updates = updates

        callback = keras.callbacks.LambdaCallback(
            on_train_begin=on_train_begin, on_epoch_begin=on_epoch_begin, on_train_batch_end=on_train_batch_end
        )
        return callback


def _optimizer_updates(model: keras.Model) -> int:
    """Updates, not batches: one per accumulate_steps batches. (Read as a number: under
    tf.distribute the counter is a MirroredVariable, which int() refuses.)"""
    import keras

    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


# ---- The average


def averaging_sources(run_dir: Path, config: Config) -> list[Path]:
    """What the average is taken over, oldest first: the last `average_last` of the snapshots
    taken every `average_every` updates, or (average_every=0) of the epoch checkpoint folders."""
    kept = kept_for_averaging(run_dir, config)
    return kept[-config.average_last :] if config.average_last else []


def kept_for_averaging(run_dir: Path, config: Config) -> list[Path]:
    """Every snapshot (with `average_every`) or epoch checkpoint the run kept, oldest first."""
    return snapshot_files(run_dir) if config.average_every else checkpoint_folders(run_dir)


def too_few_to_average(run_dir: Path, config: Config) -> str | None:
    """Why the run cannot be averaged with `config`'s average_last and average_every, or None if it can."""
    if config.average_last < 2:
        return (
            f"average_last={config.average_last} averages nothing; set average_last=2 or more "
            f"(--average_last N) to average {run_dir}"
        )
    kept = len(kept_for_averaging(run_dir, config))
    if kept >= 2:
        return None
    from sequencer.runs import load_config

    trained = load_config(run_dir)  # what it kept follows what it was trained with
    what = f"snapshot(s), one every {config.average_every} updates" if config.average_every else "checkpoint(s)"
    return (
        f"average_last={config.average_last}: {run_dir} kept {kept} {what} (it was trained with "
        f"average_last={trained.average_last}, average_every={trained.average_every}); averaging needs two or more"
    )


def saved_weights(source: Path, config: Config) -> list[np.ndarray]:
    """The weights of a snapshot file or of a checkpoint folder of a run of `config`'s model."""
    if source.is_dir():
        return load_model(source / MODEL_FILE, config).get_weights()
    try:
        with np.load(source, allow_pickle=False) as arrays:
            return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{source}: cannot load the weights ({first_line(error)})") from None


def average_run(run_dir: Path, config: Config, corpus: Corpus, strategy: tf.distribute.Strategy) -> dict | None:
    """Average the weights of the run's last `average_last` checkpoints or snapshots, and keep the
    better of the average and the best epoch's model in model.keras; return the record of it, or
    None (with a line in the log) when the run kept fewer than two.

    The two are scored on the validation pairs (by `monitor`, or val_loss when the monitor is a
    training metric); the other is kept as averaged.keras or best-epoch.keras. Both scores go
    into summary.json under "averaging" with the file of each. model.keras exists at every
    moment, and the best epoch's model is never lost: best-epoch.keras exists exactly when
    model.keras holds an average (RunState removes it when a later epoch is better).
    """
    from sequencer.runs import SUMMARY_FILE, check_corpus, load_summary

    check_corpus(run_dir, corpus, config.train_dir)  # its validation pairs are the run's own
    problem = too_few_to_average(run_dir, config)
    if problem:
        log.info("%s; nothing averaged", problem)
        return None
    sources = averaging_sources(run_dir, config)
    vocab_sizes = (len(corpus.source_vocab), len(corpus.target_vocab))
    averaged = new_model(config, vocab_sizes, 0, 1, strategy)
    averaged.set_weights(average_weights({source.name: saved_weights(source, config) for source in sources}))
    single_file = run_dir / (BEST_EPOCH_FILE if (run_dir / BEST_EPOCH_FILE).is_file() else MODEL_FILE)
    single = new_model(config, vocab_sizes, 0, 1, strategy)
    single.set_weights(load_model(single_file, config).get_weights())
    metric, mode = config.validation_monitor
    scores = {"averaged": validation_score(averaged, corpus, config, strategy)}
    scores["best"] = validation_score(single, corpus, config, strategy)
    better = scores["averaged"] > scores["best"] if mode == "max" else scores["averaged"] < scores["best"]
    save_model(averaged, run_dir / AVERAGED_FILE)
    if better:
        if single_file.name == MODEL_FILE:
            save_model(single, run_dir / BEST_EPOCH_FILE)
        os.replace(run_dir / AVERAGED_FILE, run_dir / MODEL_FILE)
    elif single_file.name == BEST_EPOCH_FILE:  # model.keras held an earlier average: the best epoch is back
        os.replace(single_file, run_dir / MODEL_FILE)
    record = {
        "checkpoints": [source.name for source in sources],
        "metric": metric,
        "averaged": scores["averaged"],
        "best_epoch": scores["best"],
        "model.keras": "averaged" if better else "best epoch",
        "files": {"averaged": MODEL_FILE, "best_epoch": BEST_EPOCH_FILE}
        if better
        else {"averaged": AVERAGED_FILE, "best_epoch": MODEL_FILE},
    }
    write_json(run_dir / SUMMARY_FILE, {**load_summary(run_dir), "averaging": record})
    log.info(
        "average of %s: %s %.4g, best epoch %.4g; model.keras holds the %s",
        ", ".join(record["checkpoints"]),
        metric,
        scores["averaged"],
        scores["best"],
        record["model.keras"],
    )
    return record


def validation_score(model: keras.Model, corpus: Corpus, config: Config, strategy: tf.distribute.Strategy) -> float:
    """The validation monitor's value (val_loss, val_accuracy or val_chrf) of `model` on the validation pairs."""
    from sequencer.callbacks import ValidationChrF
    from sequencer.dataset import validation_batches
    from sequencer.search import GreedyDecoder

    metric, _ = config.validation_monitor
    if metric == "val_chrf":
        return ValidationChrF(corpus, config, every=1).chrf(GreedyDecoder(model))
    with strategy.scope():
        results = model.evaluate(validation_batches(config, corpus, strategy), verbose=0, return_dict=True)
    return float(results[metric.removeprefix("val_")])
