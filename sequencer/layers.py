"""Custom Keras layers and helpers the models share."""

from __future__ import annotations

import keras
import tensorflow as tf
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


@keras.saving.register_keras_serializable(package="sequencer")
class TokenProbabilities(layers.Layer):
    """Softmax over the target vocabulary, in float32, carrying the decoder inputs' padding mask.

    Called on [logits (B, T, V), decoder input ids (B, T)]. Keras leaves masked positions out of
    the loss and the metrics; models whose last layers do not pass a padding mask on (a tied
    output projection) attach it here. Float32 even under mixed precision, as the Keras mixed
    precision guide advises for the outputs.
    """

    def __init__(self, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)

    def call(self, inputs):
        logits, _ = inputs
        return ops.softmax(ops.cast(logits, "float32"))

    def compute_mask(self, inputs, mask=None):
        return ops.not_equal(inputs[1], PAD_ID)


def token_vectors(vocab_size: int, embedding_dim: int, side: str) -> layers.Layer:
    """The layer that turns `side`'s ids ("source" or "target") into vectors, masking padding.

    One-hot vectors when `embedding_dim` is 0, as in the original model; a learned embedding otherwise.
    """
    if embedding_dim:
        return layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name=f"{side}_embedding")
    return OneHot(vocab_size, name=f"{side}_one_hot")


def stacked_name(name: str, layer: int) -> str:
    """`name` for the first layer of a stack (the name models of one layer have always had), `name_N` for the Nth."""
    return name if layer == 0 else f"{name}_{layer + 1}"


def step_cells(cells: list, inputs: tf.Tensor, states: list) -> tuple[tf.Tensor, list]:
    """One time step through a stack of recurrent cells: (the last cell's output, each cell's new state).

    `inputs` lose the padding mask their layer attached: cells take no mask, and one step's tokens
    need none (the outputs of finished sentences, which read padding, are ignored).
    """
    inputs = tf.identity(inputs)
    new_states = []
    for cell, state in zip(cells, states):
        inputs, state = cell(inputs, state)
        new_states.append(state)
    return inputs, new_states
