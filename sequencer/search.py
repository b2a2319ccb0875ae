"""Decoding whole batches as compiled loops: greedy search and beam search.

The original example called `model.predict` once per output character per sentence. Here the
encoder runs once per batch and every decoder step of every sentence in the batch runs inside one
`tf.function` loop, which stops when each sentence (each beam) has produced its end marker or at
`max_len`. Both use only a model's `encode` and `step` (see `seq2seq.py`), so they decode every model.
Neither emits padding or the start marker, nor the end marker before `min_len` tokens: a
barely trained model, which ranks the end marker first, would otherwise translate every
sentence as an empty string.

Scores are log-probabilities under the model, divided by the GNMT length penalty
((5 + length) / 6) ** alpha (Wu et al., 2016); alpha = 0 compares plain log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from sequencer.seq2seq import Seq2Seq
from sequencer.translation import length_penalty
from sequencer.vocabulary import END_ID, PAD_ID, START_ID

# (source ids (batch, time), max_len, min_len)
_SIGNATURE = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)]


@dataclass(frozen=True)
class Hypotheses:
    """Decoded output ids (batch, n, steps), padded with PAD_ID, and their scores (batch, n), best first."""

    ids: np.ndarray
    log_probs: np.ndarray
    lengths: np.ndarray

    def scores(self, alpha: float) -> np.ndarray:
        return self.log_probs / length_penalty(self.lengths.astype(np.float32), alpha)


def allowed_next(probabilities, step, min_len):
    """`probabilities` (batch, vocab) of the token at `step` (0 for the first), with the tokens
    decoding may not emit there at 0.

    Padding and the start marker are never emitted: no training target holds them, but an
    untrained or small model can still rank them first, and padding read back as input is a token
    the training graph never saw unmasked. The end marker is not emitted before `min_len` tokens.
    """
    ids = tf.range(tf.shape(probabilities)[-1])
    banned = (ids == PAD_ID) | (ids == START_ID) | ((ids == END_ID) & (step < min_len))
    return tf.where(banned, tf.zeros_like(probabilities), probabilities)


class GreedyDecoder:
    """Takes the most probable token at every step."""

    def __init__(self, model: Seq2Seq):
        self.model = model
        self._decode = tf.function(self.decode, input_signature=_SIGNATURE)

    def __call__(self, source_ids: np.ndarray, max_len: int, min_len: int = 0) -> Hypotheses:
        """One hypothesis per sentence; its ids end with END_ID, or are cut at `max_len`."""
        return Hypotheses(*(tensor.numpy() for tensor in self._decode(*_tensors(source_ids, max_len, min_len))))

    def decode(self, source_ids, max_len, min_len):
        """The search as TensorFlow ops: ids (B, 1, T), log-probabilities (B, 1), lengths (B, 1)."""
        state = self.model.encode(source_ids, max_len)
        batch_size = tf.shape(source_ids)[0]
        token = tf.fill([batch_size], START_ID)
        finished = tf.zeros([batch_size], tf.bool)
        log_prob = tf.zeros([batch_size])
        length = tf.zeros([batch_size], tf.int32)
        steps = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
        for step in tf.range(max_len):
            tf.autograph.experimental.set_loop_options(shape_invariants=[_any_shape(state)])
            probabilities, state = self.model.step(token, state, step)
            probabilities = allowed_next(probabilities, step, min_len)
            token = tf.where(finished, PAD_ID, tf.argmax(probabilities, axis=-1, output_type=tf.int32))
            chosen = tf.gather(probabilities, token, batch_dims=1)
            log_prob += tf.where(finished, 0.0, tf.math.log(chosen))
            length += tf.cast(~finished, tf.int32)
            steps = steps.write(step, token)
            finished = finished | tf.equal(token, END_ID)
            if tf.reduce_all(finished):
                break
        ids = tf.reshape(tf.transpose(steps.stack()), [batch_size, 1, -1])
        return ids, log_prob[:, None], length[:, None]


class BeamSearchDecoder:
    """Keeps the `beam_width` best hypotheses of every sentence at every step.

    A finished hypothesis stays in the beam with its score, competing with the live ones under the
    length penalty. The greedy hypothesis is scored too and takes its place among the results
    when it is better: beam search alone can prune the greedy path and end lower, and a wider
    search should never give a worse translation than greedy decoding.
    """

    def __init__(self, model: Seq2Seq, beam_width: int, alpha: float):
        self.beam_width = beam_width
        self.alpha = alpha
        self.model = model
        self.greedy = GreedyDecoder(model)
        self._beams = tf.function(self.beam_search, input_signature=_SIGNATURE)
        # n_best a tensor: one trace serves every n-best count (a server is asked for many).
        self._decode = tf.function(self.decode, input_signature=[*_SIGNATURE, tf.TensorSpec([], tf.int32)])

    def __call__(self, source_ids: np.ndarray, max_len: int, min_len: int = 0, n_best: int = 1) -> Hypotheses:
        """The `n_best` best hypotheses of each sentence, best first, the greedy one included."""
        inputs = (*_tensors(source_ids, max_len, min_len), tf.constant(n_best, tf.int32))
        return Hypotheses(*(tensor.numpy() for tensor in self._decode(*inputs)))

    def beams(self, source_ids: np.ndarray, max_len: int, min_len: int = 0) -> Hypotheses:
        """The `beam_width` hypotheses of plain beam search, best first."""
        return Hypotheses(*(tensor.numpy() for tensor in self._beams(*_tensors(source_ids, max_len, min_len))))

    def decode(self, source_ids, max_len, min_len, n_best):
        """Beam search and the greedy hypothesis as TensorFlow ops, the `n_best` best first:
        ids (B, n_best, T), log-probabilities (B, n_best), lengths (B, n_best).

        `n_best` is an int, fixed in the graph (an export's), or a scalar tensor."""
        beams = self.beam_search(source_ids, max_len, min_len)
        greedy = self.greedy.decode(source_ids, max_len, min_len)
        steps = tf.maximum(tf.shape(beams[0])[2], tf.shape(greedy[0])[2])
        beam_ids, greedy_ids = (
            tf.pad(ids, [[0, 0], [0, 0], [0, steps - tf.shape(ids)[2]]]) for ids in (beams[0], greedy[0])
        )
        ids = tf.concat([beam_ids, greedy_ids], axis=1)  # (B, k + 1, T): the greedy hypothesis last
        log_probs = tf.concat([beams[1], greedy[1]], axis=1)
        lengths = tf.concat([beams[2], greedy[2]], axis=1)
        scores = log_probs / length_penalty(tf.cast(lengths, tf.float32), self.alpha)
        among_beams = tf.reduce_any(tf.reduce_all(tf.equal(beam_ids, greedy_ids), axis=2), axis=1)
        scores = tf.concat([scores[:, :-1], tf.where(among_beams[:, None], -np.inf, scores[:, -1:])], axis=1)
        order = tf.argsort(scores, axis=1, direction="DESCENDING", stable=True)[:, :n_best]
        return (
            tf.gather(ids, order, batch_dims=1),
            tf.gather(log_probs, order, batch_dims=1),
            tf.gather(lengths, order, batch_dims=1),
        )

    def beam_search(self, source_ids, max_len, min_len):
        """Plain beam search as TensorFlow ops: ids (B, k, T), log-probabilities (B, k), lengths (B, k)."""
        k, alpha = self.beam_width, self.alpha
        batch_size = tf.shape(source_ids)[0]
        state = tf.nest.map_structure(lambda s: tf.repeat(s, k, axis=0), self.model.encode(source_ids, max_len))
        tokens = tf.fill([batch_size * k], START_ID)
        # Only the first beam is alive at the start, so the first step expands one hypothesis.
        log_probs = tf.tile(tf.constant([[0.0] + [-np.inf] * (k - 1)]), [batch_size, 1])
        lengths = tf.zeros([batch_size, k], tf.int32)
        finished = tf.zeros([batch_size, k], tf.bool)
        ids = tf.zeros([batch_size, k, 0], tf.int32)
        for step in tf.range(max_len):
            tf.autograph.experimental.set_loop_options(
                shape_invariants=[(ids, tf.TensorShape([None, k, None])), _any_shape(state)]
            )
            probabilities, state = self.model.step(tokens, state, step)
            probabilities = allowed_next(probabilities, step, min_len)
            vocab_size = tf.shape(probabilities)[-1]
            step_log_probs = tf.math.log(tf.reshape(probabilities, [batch_size, k, vocab_size]))
            # A finished hypothesis can only be followed by padding, at no cost.
            padding_only = tf.where(tf.range(vocab_size) == PAD_ID, 0.0, -np.inf)
            step_log_probs = tf.where(finished[:, :, None], padding_only, step_log_probs)
            totals = log_probs[:, :, None] + step_log_probs
            candidate_lengths = lengths + tf.cast(~finished, tf.int32)
            penalty = length_penalty(tf.cast(candidate_lengths, tf.float32), alpha)
            candidates = tf.reshape(totals, [batch_size, -1])
            _, best = tf.math.top_k(tf.reshape(totals / penalty[:, :, None], [batch_size, -1]), k)
            parent, token = best // vocab_size, best % vocab_size
            log_probs = tf.gather(candidates, best, batch_dims=1)
            lengths = tf.gather(candidate_lengths, parent, batch_dims=1)
            finished = tf.gather(finished, parent, batch_dims=1) | tf.equal(token, END_ID)
            ids = tf.concat([tf.gather(ids, parent, batch_dims=1), token[:, :, None]], axis=2)
            rows = tf.reshape(parent + k * tf.range(batch_size)[:, None], [-1])
            state = tf.nest.map_structure(lambda s, rows=rows: tf.gather(s, rows), state)
            tokens = tf.reshape(token, [-1])
            if tf.reduce_all(finished):
                break
        return ids, log_probs, lengths


def _tensors(source_ids: np.ndarray, max_len: int, min_len: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    return tf.constant(source_ids, tf.int32), tf.constant(max_len, tf.int32), tf.constant(min_len, tf.int32)


def _any_shape(state) -> tuple[object, object]:
    """A loop's shape invariant for a decoding state: any tensor of it may change its shape from
    step to step (the Transformer's caches grow)."""
    return state, tf.nest.map_structure(lambda tensor: tf.TensorShape([None] * tensor.shape.rank), state)
