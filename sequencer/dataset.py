"""The batches a model trains and validates on, as tf.data pipelines, on one device or several.

The order of the batches of epoch e depends only on `seed` and e, never on how many epochs this
process has run: a run resumed from its checkpoint after epoch e sees the batches that an
uninterrupted run would, and ends with the same weights. The batcher (`batcher=`) decides which
pairs go together; each batch is padded to its own longest pair inside tf.data, while the model
trains on the previous one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from sequencer import batchers
from sequencer.config import Config
from sequencer.data import Corpus, Sequences, teacher_forcing
from sequencer.errors import ConfigError

log = logging.getLogger(__name__)


def epoch_plan(config: Config, source: Sequences, target: Sequences, epoch: int | None) -> list[np.ndarray]:
    """The pair indices of each batch of `epoch` (None: the fixed order of validation)."""
    lengths = np.stack([source.lengths, target.lengths], axis=1)
    rng = None if epoch is None else np.random.default_rng([config.seed, epoch])
    batcher = batchers.get(config.batcher)()
    return batcher.batches(lengths, config.batch_size, rng, batch_tokens=config.batch_tokens)


def batches_per_epoch(config: Config, corpus: Corpus) -> int:
    """How many batches every epoch of training has; ConfigError if the batcher breaks its contract."""
    steps = len(epoch_plan(config, corpus.train_source, corpus.train_target, 0))
    if config.batch_tokens and len(epoch_plan(config, corpus.train_source, corpus.train_target, 1)) != steps:
        raise ConfigError(f"batcher={config.batcher} must make as many batches of tokens in every epoch")
    if not config.batch_tokens and steps != -(-len(corpus.train_source) // config.batch_size):
        raise ConfigError(f"batcher={config.batcher} must make batches of {config.batch_size} pairs but one")
    return steps


def training_batches(
    config: Config, corpus: Corpus, first_epoch: int, strategy: tf.distribute.Strategy
) -> tuple[tf.data.Dataset | tf.distribute.DistributedDataset, int]:
    """The batches of the epochs from `first_epoch` (counted from 0) to `epochs`, and the number per epoch."""
    steps = batches_per_epoch(config, corpus)
    if config.batch_tokens:
        _warn_of_pairs_over_budget(corpus, config.batch_tokens)

    def plan(epoch: int) -> list[np.ndarray]:
        return epoch_plan(config, corpus.train_source, corpus.train_target, epoch)

    epochs = range(first_epoch, config.epochs)
    data = _distribute(
        strategy,
        lambda *replicas: make_dataset(corpus.train_source, corpus.train_target, plan, epochs, steps, *replicas),
    )
    return data, steps


def validation_batches(
    config: Config, corpus: Corpus, strategy: tf.distribute.Strategy
) -> tf.data.Dataset | tf.distribute.DistributedDataset | None:
    """The validation pairs in fixed batches, or None without any."""
    if not len(corpus.val_source):
        return None
    batches = epoch_plan(config, corpus.val_source, corpus.val_target, None)
    return _distribute(
        strategy,
        lambda *replicas: make_dataset(
            corpus.val_source, corpus.val_target, lambda _: batches, [0], len(batches), *replicas
        ),
    )


def replica_slices(batch: np.ndarray, replicas: int) -> list[np.ndarray]:
    """One batch's pair indices split among `replicas`: every replicas-th pair, so that each
    replica of a batch sorted by length gets pairs of every length in it (Keras weighs the
    replicas' losses alike, so their tokens should be alike).

    Every replica gets as many pairs: a batch whose pairs do not divide evenly (a batch of tokens,
    or one of fewer pairs than replicas) repeats its first pairs, at most replicas - 1 of them.
    tf.distribute reduces the replicas' inputs as tensors of one shape (Keras does so with the
    first batch, to build the model), and no replica may get an empty batch.
    """
    pairs = np.resize(batch, -(-len(batch) // replicas) * replicas)  # a multiple of replicas
    return [pairs[replica::replicas] for replica in range(replicas)]


def make_dataset(
    source: Sequences,
    target: Sequences,
    plan: Callable[[int], list[np.ndarray]],
    epochs: Sequence[int],
    batches_per_epoch: int,
    replicas: range = range(1),
    replica_count: int = 1,
) -> tf.data.Dataset:
    """Batches of ((source ids, decoder input ids), decoder target ids) for the given epochs, in order.

    `plan(epoch)` gives the pair indices of each of the `batches_per_epoch` batches of that epoch;
    each batch is padded with id 0 to its own longest pair. Under tf.distribute each planned batch
    is split into `replica_count` slices, and this dataset yields the slices of `replicas` (those
    fed by one input pipeline) in turn: together the replicas train on the planned batch (with at
    most replicas - 1 of its pairs repeated, see `replica_slices`). The slices of one batch are
    padded alike, to the batch's longest pair, because the replicas' results are summed.
    """
    decoder_input, decoder_target = teacher_forcing(target)
    columns = [tf.RaggedTensor.from_row_lengths(s.values, s.lengths) for s in (source, decoder_input, decoder_target)]

    def epoch_slices(epoch):
        slices, widths = [], []
        for batch in plan(int(epoch)):
            parts = replica_slices(batch, replica_count)[replicas.start : replicas.stop]
            slices += parts
            widths += [[source.lengths[batch].max(), target.lengths[batch].max() + 1]] * len(parts)
        sizes = np.array([len(part) for part in slices], np.int64)
        return np.concatenate(slices).astype(np.int64), sizes, np.array(widths, np.int64)

    def batches_of(epoch):
        indices, sizes, widths = tf.numpy_function(epoch_slices, [epoch], (tf.int64,) * 3, stateful=False)
        indices.set_shape([None])
        sizes.set_shape([None])
        widths.set_shape([None, 2])
        return tf.data.Dataset.from_tensor_slices((tf.RaggedTensor.from_row_lengths(indices, sizes), widths))

    def pad_to(ids, width):
        return tf.pad(ids, [[0, 0], [0, width - tf.shape(ids, tf.int64)[1]]])

    def gather(indices, widths):
        source_ids, input_ids, target_ids = (
            pad_to(tf.gather(column, indices).to_tensor(), width)
            for column, width in zip(columns, (widths[0], widths[1], widths[1]))
        )
        return (source_ids, input_ids), target_ids

    batches = tf.data.Dataset.from_tensor_slices(tf.constant(list(epochs), tf.int64)).flat_map(batches_of)
    batches = batches.apply(tf.data.experimental.assert_cardinality(len(epochs) * batches_per_epoch * len(replicas)))
    return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _distribute(
    strategy: tf.distribute.Strategy, make: Callable[..., tf.data.Dataset]
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """`make()` on one device; under several replicas, `make(replicas, replica_count)` for each input pipeline."""
    if strategy.num_replicas_in_sync == 1:
        return make()

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        return make(range(first, first + local), context.num_replicas_in_sync)

    return strategy.distribute_datasets_from_function(pipeline)


def _warn_of_pairs_over_budget(corpus: Corpus, batch_tokens: int) -> None:
    """A budget below the longest pairs makes each of them a batch of one pair, which a user should know."""
    tokens = batchers.pair_tokens(np.stack([corpus.train_source.lengths, corpus.train_target.lengths], axis=1))
    over = int(np.count_nonzero(tokens > batch_tokens))
    if over:
        log.warning(
            "batch_tokens=%d is less than the longest training pair (%d tokens): %d pair(s) over it are "
            "batches of one pair each",
            batch_tokens,
            int(tokens.max()),
            over,
        )
