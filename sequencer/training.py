"""Training: the tf.data pipeline, Keras `fit`, and saving the run folder."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import tensorflow as tf

from sequencer.config import Config
from sequencer.data import Corpus, Sequences
from sequencer.model import build_model
from sequencer.runs import new_run_name, save_run
from sequencer.vocabulary import END_ID, START_ID

log = logging.getLogger(__name__)


def make_dataset(
    source: Sequences, target: Sequences, batch_size: int, shuffle_seed: int | None = None
) -> tf.data.Dataset:
    """Batches of ((source ids, decoder input ids), decoder target ids) for teacher forcing.

    Each batch is padded with id 0 to its own longest pair only. With `shuffle_seed` the pairs are
    reshuffled every epoch, reproducibly for that seed.
    """
    pairs = tf.data.Dataset.from_tensor_slices(
        (
            tf.RaggedTensor.from_row_lengths(source.values, source.lengths),
            tf.RaggedTensor.from_row_lengths(target.values, target.lengths),
        )
    )
    if shuffle_seed is not None:
        pairs = pairs.shuffle(len(source), seed=shuffle_seed, reshuffle_each_iteration=True)
    return (
        pairs.map(_teacher_forcing, num_parallel_calls=tf.data.AUTOTUNE)
        .padded_batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def _teacher_forcing(source: tf.Tensor, target: tf.Tensor):
    """The decoder reads `<s> y1 ... yn` and learns to predict `y1 ... yn </s>`."""
    decoder_input = tf.concat([[START_ID], target], axis=0)
    decoder_target = tf.concat([target, [END_ID]], axis=0)
    return (source, decoder_input), decoder_target


class Trainer:
    """Builds the model the config describes, trains it on a Corpus and saves the run folder."""

    def __init__(self, config: Config):
        self.config = config

    def train(self, corpus: Corpus) -> Path:
        """Train, then save a complete run folder and return its path.

        Ctrl-C (or SIGTERM, which the scripts turn into KeyboardInterrupt) stops training; the
        model as it stands is saved, so that an interrupted run leaves a usable folder, and then
        the KeyboardInterrupt goes on to the caller.
        """
        config = self.config
        keras.utils.set_random_seed(config.seed)
        model = build_model(len(corpus.source_vocab), len(corpus.target_vocab), config.latent_dim)
        # Targets are ids, so `categorical_crossentropy` from an old config means its sparse form.
        model.compile(optimizer=config.optimizer, loss="sparse_categorical_crossentropy", metrics=config.metrics)
        model.summary(print_fn=lambda line, **_: log.info("%s", line))

        train_data = make_dataset(corpus.train_source, corpus.train_target, config.batch_size, shuffle_seed=config.seed)
        val_data = None
        if len(corpus.val_source):
            val_data = make_dataset(corpus.val_source, corpus.val_target, config.batch_size)
        history = keras.callbacks.History()  # kept when fit is interrupted, unlike fit's return value
        started = time.monotonic()
        interrupted = False
        try:
            model.fit(train_data, validation_data=val_data, epochs=config.epochs, callbacks=[history], shuffle=False)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted during epoch %d; saving the model as it stands", len(history.epoch) + 1)

        metrics = {name: [float(value) for value in values] for name, values in history.history.items()}
        summary = {
            "epochs_completed": len(history.epoch),
            "interrupted": interrupted,
            "train_pairs": len(corpus.train_source),
            "val_pairs": len(corpus.val_source),
            "max_source_len": corpus.max_source_len,
            "max_target_len": corpus.max_target_len,
            "seconds": round(time.monotonic() - started, 3),
            "final": {name: values[-1] for name, values in metrics.items() if values},
        }
        run_dir = save_run(
            config.model_dir,
            new_run_name(config.model_dir),
            model,
            (corpus.source_vocab, corpus.target_vocab),
            config.to_dict(),
            metrics,
            summary,
        )
        log.info("saved the run to %s", run_dir)
        if interrupted:
            raise KeyboardInterrupt
        return run_dir
