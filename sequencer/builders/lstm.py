"""The Keras example's LSTM encoder-decoder: encoder states initialise the decoder."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from sequencer.builders import Inference, ModelBuilder
from sequencer.layers import OneHot


class LSTMBuilder(ModelBuilder):
    """One encoder LSTM and one decoder LSTM of `latent_dim` units over one-hot characters.

    The encoder's final states initialise the decoder, which is trained with teacher forcing: it
    reads `<s> y1 ... yn` and predicts `y1 ... yn </s>`. The LSTMs keep Keras' default settings
    (tanh, sigmoid, no recurrent dropout, not unrolled), which is what makes them run on cuDNN on
    a GPU.
    """

    def build(self, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
        latent_dim = self.config.latent_dim
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        decoder_input_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_input_ids")

        source = OneHot(source_vocab_size, name="source_one_hot")(source_ids)
        _, state_h, state_c = layers.LSTM(latent_dim, return_state=True, name="encoder_lstm")(source)

        decoder_input = OneHot(target_vocab_size, name="target_one_hot")(decoder_input_ids)
        decoder_lstm = layers.LSTM(latent_dim, return_sequences=True, name="decoder_lstm")
        decoded = decoder_lstm(decoder_input, initial_state=[state_h, state_c])
        # float32 probabilities even under mixed precision, as the Keras mixed precision guide advises.
        output_layer = layers.Dense(target_vocab_size, activation="softmax", dtype="float32", name="decoder_output")
        probabilities = output_layer(decoded)
        return keras.Model([source_ids, decoder_input_ids], probabilities, name="lstm_seq2seq")

    def inference(self, model: keras.Model) -> Inference:
        return LSTMInference(model)


class LSTMInference(Inference):
    def __init__(self, model: keras.Model):
        self.source_one_hot = model.get_layer("source_one_hot")
        self.encoder_lstm = model.get_layer("encoder_lstm")
        self.target_vocab_size = model.get_layer("target_one_hot").depth
        self.decoder_cell = model.get_layer("decoder_lstm").cell
        self.output_layer = model.get_layer("decoder_output")

    def encode(self, source_ids):
        mask = self.source_one_hot.compute_mask(source_ids)
        _, state_h, state_c = self.encoder_lstm(self.source_one_hot(source_ids), mask=mask)
        return [state_h, state_c]

    def step(self, tokens, state):
        inputs = tf.one_hot(tokens, self.target_vocab_size, dtype=self.decoder_cell.compute_dtype)
        output, state = self.decoder_cell(inputs, state)
        return self.output_layer(output), state
