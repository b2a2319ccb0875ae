"""Scoring given translations: each pair's log-probability under a run's model.

Re-ranking candidates, filtering noisy pairs and estimating quality need the model's opinion of a
translation someone else wrote (fairseq's `--score-reference`, marian-scorer, Sockeye's
`score.py`). A pair's target is read the way training reads it, by teacher forcing: the model's
`call` on the source and `<s> y1 ... yn` gives the probability of each of `y1 ... yn </s>` at
once, in one pass over the whole batch, so scoring costs about one decoding step per batch
rather than one per token.

The total is the sum of the log-probabilities of the target's tokens and its end marker, the
same number search gives its own hypotheses (`Hypotheses.log_probs`); divided by the GNMT
length penalty it is the score search ranks them by, and per token it is comparable across lengths.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sequencer.config import Config
from sequencer.data import pad_ids
from sequencer.runs import Run
from sequencer.search import length_penalty
from sequencer.translation import unknown_tokens
from sequencer.vocabulary import END_ID, START_ID


@dataclass(frozen=True)
class PairScore:
    """A pair's log-probability under the model: its total, over `tokens` target tokens (the end marker counted)."""

    total: float
    tokens: int

    @property
    def per_token(self) -> float:
        return self.total / self.tokens

    def normalized(self, alpha: float) -> float:
        """The total divided by the GNMT length penalty: the score search ranks hypotheses by."""
        return self.total / float(length_penalty(float(self.tokens), alpha))


@dataclass(frozen=True)
class Scores:
    """The scores of some pairs, in order, and the tokens their sides held that the run never saw."""

    pairs: list[PairScore]
    unknown_tokens: Counter[str]


class Scorer:
    """Scores pairs with the model and vocabularies of one run folder, `decode_batch_size` pairs at a time."""

    def __init__(self, run: Run, config: Config | None = None):
        import tensorflow as tf

        self.run = run
        self.batch_size = (config or run.config).decode_batch_size
        ids = tf.TensorSpec([None, None], tf.int32)
        self._log_probs = tf.function(self._teacher_forced, input_signature=[ids, ids, ids])

    def score(self, pairs: Sequence[tuple[str, str]], progress: Callable[[int], None] | None = None) -> Scores:
        """The score of each (source, target) pair, in order."""
        limit = self.run.model.max_positions  # learned positions: no more tokens, the target's marker included
        sources = [self.run.source_vocab.encode(source)[:limit] for source, _ in pairs]
        targets = [self.run.target_vocab.encode(target)[: limit - 1 if limit else None] for _, target in pairs]
        unknown = unknown_tokens(self.run.source_vocab, [source for source, _ in pairs], sources)
        unknown.update(unknown_tokens(self.run.target_vocab, [target for _, target in pairs], targets))
        return Scores(self.score_ids(sources, targets, progress), unknown)

    def score_ids(
        self,
        sources: Sequence[np.ndarray],
        targets: Sequence[np.ndarray],
        progress: Callable[[int], None] | None = None,
    ) -> list[PairScore]:
        """The score of each pair of id sequences (no markers), in order; pairs are batched by length."""
        scores: list[PairScore] = [PairScore(0.0, 1)] * len(sources)
        order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(targets[i])))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            decoder_input = pad_ids([np.concatenate([[START_ID], targets[i]]) for i in batch])
            decoder_target = pad_ids([np.concatenate([targets[i], [END_ID]]) for i in batch])
            totals = self._log_probs(pad_ids([sources[i] for i in batch]), decoder_input, decoder_target).numpy()
            for i, total in zip(batch, totals):
                scores[i] = PairScore(float(total), len(targets[i]) + 1)
            if progress:
                progress(len(batch))
        return scores

    def _teacher_forced(self, source_ids, decoder_input, decoder_target):
        """The summed log-probability of each row's target (B,), padding left out."""
        import tensorflow as tf

        probabilities = self.run.model([source_ids, decoder_input], training=False)  # (B, T, V)
        chosen = tf.gather(probabilities, decoder_target, batch_dims=2)  # (B, T)
        real = tf.not_equal(decoder_target, 0)
        return tf.reduce_sum(tf.where(real, tf.math.log(chosen), 0.0), axis=1)
