"""The character-level LSTM encoder-decoder of the Keras example, on integer ids.

The encoder LSTM reads the source; its final states initialise the decoder LSTM, which is trained
with teacher forcing: it reads `<s> y1 ... yn` and predicts `y1 ... yn </s>`. Inputs are ids; the
one-hot vectors the LSTMs read are made inside the graph, one batch at a time. Id 0 is padding:
the one-hot layers mask it, so it counts neither in the encoder's final state, nor in the loss,
nor in the metrics.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from sequencer.vocabulary import PAD_ID

# Layer names the decoder in `search.py` looks up in a trained or loaded model.
SOURCE_ONE_HOT, ENCODER_LSTM = "source_one_hot", "encoder_lstm"
TARGET_ONE_HOT, DECODER_LSTM, DECODER_OUTPUT = "target_one_hot", "decoder_lstm", "decoder_output"


@keras.saving.register_keras_serializable(package="sequencer")
class OneHot(layers.Layer):
    """Ids to one-hot vectors, masking the padding id."""

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


def build_model(source_vocab_size: int, target_vocab_size: int, latent_dim: int) -> keras.Model:
    """The training model: ([source ids, decoder input ids]) -> next-character probabilities."""
    source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    decoder_input_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_input_ids")

    source = OneHot(source_vocab_size, name=SOURCE_ONE_HOT)(source_ids)
    _, state_h, state_c = layers.LSTM(latent_dim, return_state=True, name=ENCODER_LSTM)(source)

    decoder_input = OneHot(target_vocab_size, name=TARGET_ONE_HOT)(decoder_input_ids)
    decoder_lstm = layers.LSTM(latent_dim, return_sequences=True, name=DECODER_LSTM)
    decoded = decoder_lstm(decoder_input, initial_state=[state_h, state_c])
    probabilities = layers.Dense(target_vocab_size, activation="softmax", name=DECODER_OUTPUT)(decoded)
    return keras.Model([source_ids, decoder_input_ids], probabilities, name="lstm_seq2seq")
