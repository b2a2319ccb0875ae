"""Greedy decoding of a whole batch as one compiled loop.

The original example called `model.predict` once per output character per sentence. Here the
encoder runs once per batch and every decoder step of every sentence in the batch runs inside one
`tf.function` loop, which stops when each sentence has produced its end marker or at `max_len`.
It uses only a builder's `encode` and `step`, so it decodes every model builder's models.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from sequencer.builders import Inference
from sequencer.vocabulary import END_ID, PAD_ID, START_ID


class GreedyDecoder:
    """Translates batches of padded source ids, taking the most probable token at every step."""

    def __init__(self, inference: Inference):
        self.inference = inference
        self._decode = tf.function(
            self._decode_batch,
            input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([], tf.int32)],
        )

    def __call__(self, source_ids: np.ndarray, max_len: int) -> np.ndarray:
        """Output ids (batch, steps <= max_len): each row ends with END_ID, then PAD_ID, or is cut at max_len."""
        return self._decode(tf.constant(source_ids, tf.int32), tf.constant(max_len, tf.int32)).numpy()

    def _decode_batch(self, source_ids: tf.Tensor, max_len: tf.Tensor) -> tf.Tensor:
        state = self.inference.encode(source_ids)
        batch_size = tf.shape(source_ids)[0]
        token = tf.fill([batch_size], START_ID)
        finished = tf.zeros([batch_size], tf.bool)
        steps = tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])
        for step in tf.range(max_len):
            probabilities, state = self.inference.step(token, state)
            token = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            token = tf.where(finished, PAD_ID, token)
            steps = steps.write(step, token)
            finished = finished | tf.equal(token, END_ID)
            if tf.reduce_all(finished):
                break
        return tf.transpose(steps.stack())
