"""Custom Keras layers the model builders share."""

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


def token_vectors(vocab_size: int, embedding_dim: int, side: str) -> layers.Layer:
    """The layer that turns `side`'s ids ("source" or "target") into vectors, masking padding.

    One-hot vectors when `embedding_dim` is 0, as in the original model; a learned embedding otherwise.
    """
    if embedding_dim:
        return layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name=f"{side}_embedding")
    return OneHot(vocab_size, name=f"{side}_one_hot")


def find_token_vectors(model: keras.Model, side: str) -> layers.Layer:
    """The layer `token_vectors` made for `side` in `model`."""
    names = {layer.name for layer in model.layers}
    return model.get_layer(f"{side}_embedding" if f"{side}_embedding" in names else f"{side}_one_hot")


def stacked_name(name: str, layer: int) -> str:
    """`name` for the first layer of a stack (the name models of one layer have always had), `name_N` for the Nth."""
    return name if layer == 0 else f"{name}_{layer + 1}"


def find_stacked(model: keras.Model, name: str) -> list[layers.Layer]:
    """The layers `name`, `name_2`, ... of a stack in `model`, in order."""
    names = {layer.name for layer in model.layers}
    count = 1
    while stacked_name(name, count) in names:
        count += 1
    return [model.get_layer(stacked_name(name, layer)) for layer in range(count)]


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
