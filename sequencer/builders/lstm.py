"""The Keras example's LSTM encoder-decoder: encoder states initialise the decoder."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from sequencer.layers import stacked_name, step_cells, token_vectors
from sequencer.seq2seq import Seq2Seq


@dataclass(frozen=True)
class LSTMSettings:
    latent_dim: int
    num_layers: int
    embedding_dim: int
    dropout: float


@keras.saving.register_keras_serializable(package="sequencer")
class LSTMSeq2Seq(Seq2Seq):
    """`num_layers` encoder LSTMs and as many decoder LSTMs of `latent_dim` units.

    The final states of encoder layer i initialise decoder layer i, and the decoder is trained with
    teacher forcing: it reads `<s> y1 ... yn` and predicts `y1 ... yn </s>`. With the defaults
    (one layer, one-hot input, no dropout) this is the original example's model. The LSTMs keep
    Keras' default settings (tanh, sigmoid, no recurrent dropout, not unrolled), which is what
    makes them run on cuDNN on a GPU. Decoding steps the same LSTMs' cells one token at a time.
    """

    Settings = LSTMSettings

    def __init__(self, source_vocab_size: int, target_vocab_size: int, settings: LSTMSettings, **kwargs):
        kwargs.setdefault("name", "lstm_seq2seq")
        super().__init__(source_vocab_size, target_vocab_size, settings, **kwargs)
        units, dropout = settings.latent_dim, settings.dropout
        self.source_vectors = token_vectors(source_vocab_size, settings.embedding_dim, "source")
        self.target_vectors = token_vectors(target_vocab_size, settings.embedding_dim, "target")
        self.encoder_lstms = [
            layers.LSTM(
                units, return_sequences=True, return_state=True, dropout=dropout, name=stacked_name("encoder_lstm", i)
            )
            for i in range(settings.num_layers)
        ]
        self.decoder_lstms = [
            layers.LSTM(units, return_sequences=True, dropout=dropout, name=stacked_name("decoder_lstm", i))
            for i in range(settings.num_layers)
        ]
        # float32 probabilities even under mixed precision, as the Keras mixed precision guide advises.
        self.output_layer = layers.Dense(
            target_vocab_size, activation="softmax", dtype="float32", name="decoder_output"
        )

    def call(self, inputs, training=False):
        source_ids, decoder_input_ids = inputs
        decoded = self.target_vectors(decoder_input_ids)  # (B, T, E), masked where the ids are padding
        for lstm, initial_state in zip(self.decoder_lstms, self._encoder_states(source_ids, training)):
            decoded = lstm(decoded, initial_state=initial_state, training=training)  # (B, T, units)
        return self.output_layer(decoded)  # (B, T, V)

    def _encoder_states(self, source_ids, training=False) -> list:
        """The final [h, c] of each encoder layer, each (B, units); padding does not count."""
        encoded = self.source_vectors(source_ids)
        states = []
        for lstm in self.encoder_lstms:
            encoded, state_h, state_c = lstm(encoded, training=training)
            states.append([state_h, state_c])
        return states

    def encode(self, source_ids, max_len):
        return self._encoder_states(source_ids)

    def step(self, tokens, state, index):
        output, state = step_cells([lstm.cell for lstm in self.decoder_lstms], self.target_vectors(tokens), state)
        return self.output_layer(output), state
