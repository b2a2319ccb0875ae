"""The batches a model trains and validates on: an endless, deterministic stream read from shards.

The training batches are one sequence that never ends, a function of `seed` alone: pass p over
a corpus visits its shards in an order drawn for p, and the batcher (`batcher=`) plans each
shard's batches with a generator drawn for (p, shard). A shard is read whole when the stream
comes to it, so memory holds a shard, however large the corpus. Several corpora (train_dir with
weights) each stream so, and each batch is drawn from one of them in proportion to their weights.

Batch b of the stream depends on b only: a run resumed after b batches starts the stream at b
(`BatchStream.batches(b)`), reads only the shard that batch is in, and trains on exactly the
batches an uninterrupted run would. A batcher plans the same number of batches for a shard on
every pass (its contract), so where batch b lies is arithmetic, not a replay.

Batches are padded in NumPy, each to its own longest pair, and fed to Keras through tf.data,
which builds them while the model trains on the previous one. Under tf.distribute each planned
batch is split among the replicas; under multi_worker, where every corpus has a shard for each
worker, each worker streams shards of its own (as tf.data's FILE auto-sharding would), with
batches of `batch_size` / workers pairs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from sequencer import batchers
from sequencer.config import Config
from sequencer.corpus import Corpus, Shard
from sequencer.data import Sequences
from sequencer.errors import ConfigError
from sequencer.vocabulary import END_ID, START_ID

log = logging.getLogger(__name__)

_MIX_BLOCK = 4096  # batches whose corpora are drawn together when several corpora mix
_SIGNATURE = (
    (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)),
    tf.TensorSpec([None, None], tf.int32),
)


class BatchStream:
    """The training batches of a corpus, from any batch on (see the module docstring).

    `part` of `parts` streams every parts-th shard of each corpus, with batches `parts` times smaller.
    """

    def __init__(self, config: Config, corpus: Corpus, part: int = 0, parts: int = 1):
        self.config, self.corpus = config, corpus
        self.batcher = batchers.get(config.batcher)()
        self.batch_size = max(1, config.batch_size // parts)
        self.batch_tokens = config.batch_tokens // parts if config.batch_tokens else 0
        self.shards = [entry.shards[part::parts] for entry in corpus.corpora]
        weights = np.array([entry.weight for entry in corpus.corpora], np.float64)
        self.weights = weights / weights.sum()
        self._counts: dict[str, int] = {}  # batches of each shard, every pass

    def batches_per_pass(self) -> int:
        """Batches of one pass over every corpus: the length of an epoch unless steps_per_epoch says otherwise."""
        return sum(self._count(corpus, shard) for corpus, shards in enumerate(self.shards) for shard in shards)

    def batches(self, start: int = 0) -> Iterator[tuple[Sequences, Sequences, np.ndarray]]:
        """(source, target, pair indices) of every batch from batch `start` on, the source and
        target being the ids of the batch's shard."""
        if len(self.shards) == 1:
            yield from self._corpus_batches(0, start)
            return
        streams = [self._corpus_batches(corpus, count) for corpus, count in enumerate(self._drawn_before(start))]
        block, offset = divmod(start, _MIX_BLOCK)
        while True:
            for corpus in self._draws(block)[offset:]:
                yield next(streams[corpus])
            block, offset = block + 1, 0

    def _draws(self, block: int) -> np.ndarray:
        """The corpus of each batch of a block of `_MIX_BLOCK`, drawn by the weights."""
        rng = np.random.default_rng([self.config.seed, 1, block])
        return rng.choice(len(self.weights), size=_MIX_BLOCK, p=self.weights)

    def _drawn_before(self, start: int) -> list[int]:
        """How many of the first `start` batches each corpus gave."""
        block, offset = divmod(start, _MIX_BLOCK)
        drawn = [self._draws(number) for number in range(block)] + [self._draws(block)[:offset]]
        return np.bincount(np.concatenate(drawn), minlength=len(self.weights)).tolist()

    def _corpus_batches(self, corpus: int, start: int) -> Iterator[tuple[Sequences, Sequences, np.ndarray]]:
        """The endless batches of one corpus from its batch `start` on."""
        shards = self.shards[corpus]
        pass_, skip = divmod(start, sum(self._count(corpus, shard) for shard in shards))
        loaded: tuple[str, tuple[Sequences, Sequences]] | None = None
        while True:
            order = np.random.default_rng([self.config.seed, 2, corpus, pass_]).permutation(len(shards))
            for number in order:
                shard = shards[number]
                count = self._count(corpus, shard)
                if skip >= count:
                    skip -= count
                    continue
                if loaded is None or loaded[0] != shard.name:  # a corpus of one shard reads it once
                    loaded = None  # the shard before goes before this one comes: memory holds one
                    loaded = (shard.name, self.corpus.read_shard(shard))
                for batch in self._plan(corpus, shard, pass_)[skip:]:
                    yield *loaded[1], batch
                skip = 0
            pass_ += 1

    def _plan(self, corpus: int, shard: Shard, pass_: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.config.seed, 3, corpus, pass_, int(shard.name.rsplit("-", 1)[1])])
        lengths = self.corpus.shard_lengths(shard)
        return self.batcher.batches(lengths, self.batch_size, rng, batch_tokens=self.batch_tokens)

    def _count(self, corpus: int, shard: Shard) -> int:
        """The batches the batcher plans for `shard` on every pass; ConfigError if it breaks that contract."""
        if shard.name not in self._counts:
            counts = {len(self._plan(corpus, shard, pass_)) for pass_ in (0, 1)}
            config = self.config
            if len(counts) > 1:
                raise ConfigError(f"batcher={config.batcher} must make as many batches of tokens in every epoch")
            count = counts.pop()
            if not self.batch_tokens and count != -(-shard.pairs // self.batch_size):
                raise ConfigError(f"batcher={config.batcher} must make batches of {config.batch_size} pairs but one")
            self._counts[shard.name] = count
        return self._counts[shard.name]


def training_batches(
    config: Config, corpus: Corpus, start: int, strategy: tf.distribute.Strategy
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """The training stream from batch `start` on, as tf.data, for the strategy's replicas."""
    if config.batch_tokens:
        _warn_of_pairs_over_budget(corpus, config.batch_tokens)

    def make(replicas: range = range(1), replica_count: int = 1, part: int = 0, parts: int = 1) -> tf.data.Dataset:
        if parts > 1 and all(len(entry.shards) >= parts for entry in corpus.corpora):  # shards of its own
            stream = BatchStream(config, corpus, part, parts)
            replicas, replica_count = range(len(replicas)), len(replicas)
        else:
            stream = BatchStream(config, corpus)
        return _dataset(lambda: stream.batches(start), replicas, replica_count)

    return _distribute(strategy, make)


def validation_batches(
    config: Config, corpus: Corpus, strategy: tf.distribute.Strategy
) -> tf.data.Dataset | tf.distribute.DistributedDataset | None:
    """The validation pairs in fixed batches, or None without any."""
    if not len(corpus.val_source):
        return None
    lengths = np.stack([corpus.val_source.lengths, corpus.val_target.lengths], axis=1)
    plan = batchers.get(config.batcher)().batches(lengths, config.batch_size, None, batch_tokens=config.batch_tokens)

    def make(replicas: range = range(1), replica_count: int = 1, part: int = 0, parts: int = 1) -> tf.data.Dataset:
        batches = _dataset(
            lambda: ((corpus.val_source, corpus.val_target, batch) for batch in plan), replicas, replica_count
        )
        # Known to end: Keras validates until it does, without warning that the data ran out.
        return batches.apply(tf.data.experimental.assert_cardinality(len(plan) * len(replicas)))

    return _distribute(strategy, make)


def _dataset(batches: Callable[[], Iterator], replicas: range, replica_count: int) -> tf.data.Dataset:
    """The padded batches of `batches()`, each split into `replica_count` slices of which `replicas`'
    are yielded in turn (see `replica_slices`)."""

    def padded():
        for source, target, batch in batches():
            widths = int(source.lengths[batch].max()), int(target.lengths[batch].max()) + 1
            for part in replica_slices(batch, replica_count)[replicas.start : replicas.stop]:
                yield pad_batch(source, target, part, widths)

    return tf.data.Dataset.from_generator(padded, output_signature=_SIGNATURE).prefetch(tf.data.AUTOTUNE)


def pad_batch(
    source: Sequences, target: Sequences, indices: np.ndarray, widths: tuple[int, int]
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """((source ids, decoder input ids), decoder target ids) of the pairs at `indices`, padded to
    `widths` (the source, and the target with its start or end marker): `<s> y1 ... yn` in, `y1 ... yn </s>` out."""
    source_ids = _padded(source, indices, widths[0])
    target_ids = _padded(target, indices, widths[1])
    decoder_input = np.concatenate([np.full((len(indices), 1), START_ID, np.int32), target_ids[:, :-1]], axis=1)
    decoder_target = target_ids
    decoder_target[np.arange(len(indices)), target.lengths[indices]] = END_ID
    return (source_ids, decoder_input), decoder_target


def _padded(sequences: Sequences, indices: np.ndarray, width: int) -> np.ndarray:
    """The sequences at `indices` as a (len(indices), width) int32 matrix, padded with 0."""
    lengths = sequences.lengths[indices]
    starts = sequences.offsets[indices]
    columns = np.arange(width)
    inside = columns[None, :] < lengths[:, None]
    positions = np.where(inside, starts[:, None] + columns[None, :], 0)
    return np.where(inside, sequences.values[positions], 0).astype(np.int32)


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


def _distribute(
    strategy: tf.distribute.Strategy, make: Callable[..., tf.data.Dataset]
) -> tf.data.Dataset | tf.distribute.DistributedDataset:
    """`make()` on one device; under several replicas, `make(replicas, replica_count, part, parts)`
    for each input pipeline (one per worker): its replicas among all, and which of them it is."""
    if strategy.num_replicas_in_sync == 1:
        return make()

    def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
        local = context.num_replicas_in_sync // context.num_input_pipelines
        first = context.input_pipeline_id * local
        replicas = range(first, first + local)
        return make(replicas, context.num_replicas_in_sync, context.input_pipeline_id, context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(pipeline)


def _warn_of_pairs_over_budget(corpus: Corpus, batch_tokens: int) -> None:
    """A budget below the longest pairs makes each of them a batch of one pair, which a user should know."""
    over = corpus.pairs_over(batch_tokens)
    if over:
        log.warning(
            "batch_tokens=%d is less than the longest training pair (%d tokens): %d pair(s) over it are "
            "batches of one pair each",
            batch_tokens,
            len(corpus.index["pair_tokens"]) - 1,
            over,
        )
