"""Scoring given translations: each pair's log-probability under a model, as search scores its own.

Re-ranking candidates, filtering noisy pairs and estimating quality need the model's opinion of a
translation someone else wrote (fairseq's `--score-reference`, marian-scorer, Sockeye's
`score.py`). `BatchTranslator.score` reads the pairs and reports the tokens never seen in
training; a run's translator scores them with `TeacherForcing`, a CTranslate2 export with its
`score_batch`.

A pair's total is the sum of the log-probabilities of its target's tokens and end marker, the
number search gives its own hypotheses (`search.Hypotheses.log_probs`); divided by the GNMT
length penalty (`length_penalty`) it is the score search ranks them by, and per token it is
comparable across lengths. This module imports TensorFlow only to score with a run's model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sequencer.data import pad_ids
from sequencer.vocabulary import END_ID, START_ID


def length_penalty(lengths, alpha: float):
    """GNMT's length normalisation of float `lengths` (a number, NumPy or TensorFlow): ((5 + length) / 6) ** alpha.

    A hypothesis' length counts its end marker. One formula for search, scoring and a translator
    without TensorFlow (CTranslate2's), so that they all rank alike.
    """
    return ((5.0 + lengths) / 6.0) ** alpha


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
    """The scores of some pairs, in order, and the tokens of their sides the model never saw in training."""

    pairs: list[PairScore]
    unknown_tokens: Counter[str]


class TeacherForcing:
    """Scores pairs of id sequences with a run's model, `batch_size` pairs at a time, by teacher
    forcing: the trained `call` on the source and `<s> y1 ... yn` gives the probability of each of
    `y1 ... yn </s>` at once, so a batch costs one pass rather than a decoding step per token."""

    def __init__(self, model, batch_size: int):
        import tensorflow as tf

        self.model, self.batch_size = model, batch_size
        ids = tf.TensorSpec([None, None], tf.int32)
        self._log_probs = tf.function(self._teacher_forced, input_signature=[ids, ids, ids])

    def __call__(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[float]:
        """The total log-probability of each pair of id sequences (no markers), in order; pairs
        are batched by length, so that a batch pads little."""
        totals = [0.0] * len(sources)
        order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(targets[i])))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            decoder_input = pad_ids([np.concatenate([[START_ID], targets[i]]) for i in batch])  # (B, T)
            decoder_target = pad_ids([np.concatenate([targets[i], [END_ID]]) for i in batch])  # (B, T)
            found = self._log_probs(pad_ids([sources[i] for i in batch]), decoder_input, decoder_target)
            for i, total in zip(batch, found.numpy()):
                totals[i] = float(total)
        return totals

    def _teacher_forced(self, source_ids, decoder_input, decoder_target):
        """The summed log-probability of each row's target (B,), padding left out."""
        import tensorflow as tf

        probabilities = self.model([source_ids, decoder_input], training=False)  # (B, T, V)
        chosen = tf.cast(tf.gather(probabilities, decoder_target, batch_dims=2), tf.float32)  # (B, T)
        real = tf.not_equal(decoder_target, 0)
        return tf.reduce_sum(tf.where(real, tf.math.log(chosen), 0.0), axis=1)
