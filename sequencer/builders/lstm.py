"""The Keras example's LSTM encoder-decoder: encoder states initialise the decoder."""

from __future__ import annotations

import keras
from keras import layers

from sequencer.builders import Inference, ModelBuilder
from sequencer.layers import find_stacked, find_token_vectors, stacked_name, step_cells, token_vectors


class LSTMBuilder(ModelBuilder):
    """`num_layers` encoder LSTMs and as many decoder LSTMs of `latent_dim` units.

    The final states of encoder layer i initialise decoder layer i, and the decoder is trained with
    teacher forcing: it reads `<s> y1 ... yn` and predicts `y1 ... yn </s>`. With the defaults
    (one layer, one-hot input, no dropout) this is the original example's model. The LSTMs keep
    Keras' default settings (tanh, sigmoid, no recurrent dropout, not unrolled), which is what
    makes them run on cuDNN on a GPU.
    """

    def build(self, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
        config = self.config
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        decoder_input_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_input_ids")

        encoded = token_vectors(source_vocab_size, config.embedding_dim, "source")(source_ids)
        encoder_states = []
        for layer in range(config.num_layers):
            lstm = layers.LSTM(
                config.latent_dim,
                return_sequences=True,
                return_state=True,
                dropout=config.dropout,
                name=stacked_name("encoder_lstm", layer),
            )
            encoded, state_h, state_c = lstm(encoded)
            encoder_states.append([state_h, state_c])

        decoded = token_vectors(target_vocab_size, config.embedding_dim, "target")(decoder_input_ids)
        for layer, initial_state in enumerate(encoder_states):
            lstm = layers.LSTM(
                config.latent_dim,
                return_sequences=True,
                dropout=config.dropout,
                name=stacked_name("decoder_lstm", layer),
            )
            decoded = lstm(decoded, initial_state=initial_state)
        # float32 probabilities even under mixed precision, as the Keras mixed precision guide advises.
        output_layer = layers.Dense(target_vocab_size, activation="softmax", dtype="float32", name="decoder_output")
        return keras.Model([source_ids, decoder_input_ids], output_layer(decoded), name="lstm_seq2seq")

    def inference(self, model: keras.Model) -> Inference:
        return LSTMInference(model)


class LSTMInference(Inference):
    def __init__(self, model: keras.Model):
        self.source_vectors = find_token_vectors(model, "source")
        self.target_vectors = find_token_vectors(model, "target")
        self.encoder_layers = find_stacked(model, "encoder_lstm")
        self.decoder_cells = [layer.cell for layer in find_stacked(model, "decoder_lstm")]
        self.output_layer = model.get_layer("decoder_output")

    def encode(self, source_ids):
        mask = self.source_vectors.compute_mask(source_ids)
        encoded = self.source_vectors(source_ids)
        states = []
        for layer in self.encoder_layers:
            encoded, state_h, state_c = layer(encoded, mask=mask)
            states.append([state_h, state_c])
        return states

    def step(self, tokens, state):
        output, state = step_cells(self.decoder_cells, self.target_vectors(tokens), state)
        return self.output_layer(output), state
