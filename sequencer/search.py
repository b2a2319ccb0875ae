"""Decoding whole batches as compiled loops: greedy search, beam search and sampling.

The original example called `model.predict` once per output character per sentence. Here the
encoder runs once per batch and every decoder step of every sentence in the batch runs inside one
`tf.function` loop, which stops when each sentence (each beam) has produced its end marker or at
`max_len`. All use only a model's `encode` and `step` (see `seq2seq.py`), so they decode every model.
None emits padding or the start marker, nor the end marker before `min_len` tokens: a
barely trained model, which ranks the end marker first, would otherwise translate every
sentence as an empty string.

Each decoder takes a prefix for each sentence (its first target tokens, padded with PAD_ID; none
is a column of padding): the output starts with exactly those tokens, scored as the model scores
them, and goes on from them (interactive translation, completing what a person began).

Scores are log-probabilities under the model, divided by the GNMT length penalty
((5 + length) / 6) ** alpha (Wu et al., 2016); alpha = 0 compares plain log-probabilities.
Sampled outputs are scored so too, by the model's own probabilities, not the tempered ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from sequencer.scoring import length_penalty
from sequencer.seq2seq import Seq2Seq
from sequencer.vocabulary import END_ID, PAD_ID, START_ID

_IDS = tf.TensorSpec([None, None], tf.int32)
# (source ids (B, S), max_len, min_len, prefix ids (B, P) with P >= 1)
_SIGNATURE = (_IDS, tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32), _IDS)


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


def forced(prefix_ids, step):
    """The prefix's token at `step` (B,), and whether a sentence's prefix reaches that far (B,)."""
    width = tf.shape(prefix_ids)[1]
    token = tf.gather(prefix_ids, tf.minimum(step, width - 1), axis=1)
    return token, (step < width) & tf.not_equal(token, PAD_ID)


class GreedyDecoder:
    """Takes the most probable token at every step (after the prefix)."""

    signature = _SIGNATURE

    def __init__(self, model: Seq2Seq):
        self.model = model
        self._decode = tf.function(self.decode, input_signature=self.signature)

    def __call__(
        self, source_ids: np.ndarray, max_len: int, min_len: int = 0, prefix_ids: np.ndarray | None = None
    ) -> Hypotheses:
        """One hypothesis per sentence; its ids end with END_ID, or are cut at `max_len`."""
        return Hypotheses(
            *(tensor.numpy() for tensor in self._decode(*_tensors(source_ids, max_len, min_len, prefix_ids)))
        )

    def decode(self, source_ids, max_len, min_len, prefix_ids, *choice):
        """The search as TensorFlow ops: ids (B, 1, T), log-probabilities (B, 1), lengths (B, 1).

        `choice` holds what `choose` takes besides the probabilities and the step (a sampler's settings)."""
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
            prefix_token, in_prefix = forced(prefix_ids, step)
            token = tf.where(in_prefix, prefix_token, self.choose(probabilities, step, *choice))
            token = tf.where(finished, PAD_ID, token)
            chosen = tf.gather(probabilities, token, batch_dims=1)
            log_prob += tf.where(finished, 0.0, tf.math.log(chosen))
            length += tf.cast(~finished, tf.int32)
            steps = steps.write(step, token)
            finished = finished | tf.equal(token, END_ID)
            if tf.reduce_all(finished):
                break
        ids = tf.reshape(tf.transpose(steps.stack()), [batch_size, 1, -1])
        return ids, log_prob[:, None], length[:, None]

    def choose(self, probabilities, step):
        """The token each sentence takes at `step` (B,), from its allowed `probabilities` (B, V)."""
        return tf.argmax(probabilities, axis=-1, output_type=tf.int32)


class SamplingDecoder(GreedyDecoder):
    """Draws each token from the model's distribution, sharpened by `temperature` (0 takes the most
    probable: greedy) and cut to the `top_k` most probable tokens (0: all) and to the fewest
    whose probabilities add up to `top_p` (1: all), `samples` times per sentence, best first.

    The draws are TensorFlow's stateless ones, from `seed` and the step: the same seed, the same
    sentences (in the same batches) and settings give the same samples.
    """

    signature = (
        *_SIGNATURE,
        tf.TensorSpec([], tf.float32),  # temperature
        tf.TensorSpec([], tf.int32),  # top_k
        tf.TensorSpec([], tf.float32),  # top_p
        tf.TensorSpec([], tf.int64),  # seed
        tf.TensorSpec([], tf.int32),  # samples
    )

    def __init__(self, model: Seq2Seq, alpha: float):
        super().__init__(model)
        self.alpha = alpha

    def __call__(
        self,
        source_ids: np.ndarray,
        max_len: int,
        min_len: int = 0,
        prefix_ids: np.ndarray | None = None,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        samples: int = 1,
    ) -> Hypotheses:
        """`samples` hypotheses per sentence, best first by score."""
        inputs = _tensors(source_ids, max_len, min_len, prefix_ids)
        settings = (
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(top_p, tf.float32),
            tf.constant(seed, tf.int64),
            tf.constant(samples, tf.int32),
        )
        return Hypotheses(*(tensor.numpy() for tensor in self._decode(*inputs, *settings)))

    def decode(self, source_ids, max_len, min_len, prefix_ids, temperature, top_k, top_p, seed, samples):
        """Each sentence `samples` times, its samples side by side and best first: ids (B, samples, T),
        log-probabilities and lengths (B, samples)."""
        repeated = [tf.repeat(tensor, samples, axis=0) for tensor in (source_ids, prefix_ids)]
        ids, log_probs, lengths = super().decode(
            repeated[0], max_len, min_len, repeated[1], temperature, top_k, top_p, seed
        )
        batch_size = tf.shape(source_ids)[0]
        ids = tf.reshape(ids, [batch_size, samples, -1])
        log_probs, lengths = (tf.reshape(tensor, [batch_size, samples]) for tensor in (log_probs, lengths))
        order = tf.argsort(
            log_probs / length_penalty(tf.cast(lengths, tf.float32), self.alpha),
            axis=1,
            direction="DESCENDING",
            stable=True,
        )
        return tuple(tf.gather(tensor, order, batch_dims=1) for tensor in (ids, log_probs, lengths))

    def choose(self, probabilities, step, temperature, top_k, top_p, seed):
        logits = tf.math.log(probabilities) / tf.maximum(temperature, 1e-6)  # (B, V); banned tokens: -inf
        # Each cut sorts the vocabulary, so it runs only when asked for (the default draws among all).
        logits = tf.cond(top_k > 0, lambda: _top_k_only(logits, top_k), lambda: logits)
        logits = tf.cond(top_p < 1.0, lambda: _nucleus_only(logits, top_p), lambda: logits)
        draws = tf.stack([seed, tf.cast(step, tf.int64)])
        drawn = tf.random.stateless_categorical(logits, 1, seed=draws, dtype=tf.int32)[:, 0]
        return tf.where(temperature > 0, drawn, super().choose(probabilities, step))


def _top_k_only(logits, top_k):
    """`logits` (B, V) with all but the `top_k` largest of each row set to -inf."""
    kth = tf.math.top_k(logits, tf.minimum(top_k, tf.shape(logits)[-1])).values[:, -1:]  # (B, 1)
    return tf.where(logits < kth, -np.inf, logits)


def _nucleus_only(logits, top_p):
    """`logits` (B, V) with all but the nucleus of each row set to -inf: the most probable tokens until
    their probabilities add up to `top_p` (the one that crosses it too)."""
    ranked = tf.sort(logits, axis=-1, direction="DESCENDING")
    before = tf.math.cumsum(tf.nn.softmax(ranked), axis=-1, exclusive=True)  # (B, V)
    cutoff = tf.reduce_min(tf.where(before < top_p, ranked, np.inf), axis=-1, keepdims=True)  # (B, 1)
    cutoff = tf.minimum(cutoff, ranked[:, :1])  # the most probable token stays, whatever top_p
    return tf.where(logits < cutoff, -np.inf, logits)


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

    def __call__(
        self,
        source_ids: np.ndarray,
        max_len: int,
        min_len: int = 0,
        n_best: int = 1,
        prefix_ids: np.ndarray | None = None,
    ) -> Hypotheses:
        """The `n_best` best hypotheses of each sentence, best first, the greedy one included."""
        inputs = (*_tensors(source_ids, max_len, min_len, prefix_ids), tf.constant(n_best, tf.int32))
        return Hypotheses(*(tensor.numpy() for tensor in self._decode(*inputs)))

    def beams(
        self, source_ids: np.ndarray, max_len: int, min_len: int = 0, prefix_ids: np.ndarray | None = None
    ) -> Hypotheses:
        """The `beam_width` hypotheses of plain beam search, best first."""
        inputs = _tensors(source_ids, max_len, min_len, prefix_ids)
        return Hypotheses(*(tensor.numpy() for tensor in self._beams(*inputs)))

    def decode(self, source_ids, max_len, min_len, prefix_ids, n_best):
        """Beam search and the greedy hypothesis as TensorFlow ops, the `n_best` best first:
        ids (B, n_best, T), log-probabilities (B, n_best), lengths (B, n_best).

        `n_best` is an int, fixed in the graph (an export's), or a scalar tensor."""
        beams = self.beam_search(source_ids, max_len, min_len, prefix_ids)
        greedy = self.greedy.decode(source_ids, max_len, min_len, prefix_ids)
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

    def beam_search(self, source_ids, max_len, min_len, prefix_ids):
        """Plain beam search as TensorFlow ops: ids (B, k, T), log-probabilities (B, k), lengths (B, k).

        While a sentence's prefix lasts, each of its hypotheses can take the prefix's token only
        (the one live hypothesis of the first step stays the one live hypothesis)."""
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
            prefix_token, in_prefix = forced(prefix_ids, step)  # (B,)
            only_prefix = tf.where(tf.range(vocab_size)[None, :] == prefix_token[:, None], 0.0, -np.inf)  # (B, V)
            step_log_probs = tf.where(
                in_prefix[:, None, None], step_log_probs + only_prefix[:, None, :], step_log_probs
            )
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


def _tensors(
    source_ids: np.ndarray, max_len: int, min_len: int, prefix_ids: np.ndarray | None
) -> tuple[tf.Tensor, ...]:
    """The decoders' inputs as tensors; no prefix is a column of padding."""
    if prefix_ids is None or not prefix_ids.shape[1]:
        prefix_ids = np.full((len(source_ids), 1), PAD_ID, np.int32)
    return tuple(tf.constant(value, tf.int32) for value in (source_ids, max_len, min_len, prefix_ids))


def _any_shape(state) -> tuple[object, object]:
    """A loop's shape invariant for a decoding state: any tensor of it may change its shape from
    step to step (the Transformer's caches grow)."""
    return state, tf.nest.map_structure(lambda tensor: tf.TensorShape([None] * tensor.shape.rank), state)
