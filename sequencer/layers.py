"""Custom Keras layers the model builders share."""

from __future__ import annotations

import keras
from keras import layers, ops

from sequencer.vocabulary import PAD_ID


@keras.saving.register_keras_serializable(package="sequencer")
class OneHot(layers.Layer):
    """Ids to one-hot vectors inside the graph, masking the padding id.

    The model reads integer ids, so the data never holds one-hot arrays; the mask keeps padding
    out of recurrent states, the loss and the metrics.
    """

    def __init__(self, depth: int, **kwargs):
        super().__init__(**kwargs)
        self.depth = depth
        self.supports_masking = True

    def call(self, ids):
        return ops.one_hot(ids, self.depth, dtype=self.compute_dtype)

    def compute_mask(self, ids, mask=None):
        return ops.not_equal(ids, PAD_ID)

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.depth)

    def get_config(self):
        return {**super().get_config(), "depth": self.depth}
