"""Bidirectional LSTM encoder and an LSTM decoder attending to every encoder output (Luong or Bahdanau score)."""

from __future__ import annotations

import keras
from keras import layers, ops

from sequencer.builders import Inference, ModelBuilder
from sequencer.layers import find_stacked, find_token_vectors, stacked_name, step_cells, token_vectors
from sequencer.vocabulary import PAD_ID


class AttentionBuilder(ModelBuilder):
    """An encoder-decoder that looks back at the whole source at every output step.

    The encoder is `num_layers` bidirectional LSTMs of `latent_dim` units per direction. A "bridge"
    (a tanh layer over the last layer's final forward and backward states, as in JoeyNMT)
    initialises the `num_layers` decoder LSTMs. For each decoder output h_t, attention scores
    every encoder output h_s (`attention=luong`: h_t W h_s; `attention=bahdanau`:
    v tanh(W1 h_t + W2 h_s)), and the softmax-weighted sum of the h_s (the context c_t) is joined
    to h_t as tanh(Wc [c_t; h_t]) before the output softmax (Luong et al., 2015, eq. 5).

    Attention reads the decoder LSTM's output rather than feeding back into its input (no "input
    feeding"), as in TensorFlow's NMT-with-attention tutorial: the decoder LSTM then runs over a
    whole target sequence in training, cuDNN-eligible on a GPU, and the attention for all steps is
    one batched product.
    """

    def build(self, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
        config = self.config
        units = config.latent_dim
        source_ids = keras.Input(shape=(None,), dtype="int32", name="source_ids")
        decoder_input_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_input_ids")

        memory = token_vectors(source_vocab_size, config.embedding_dim, "source")(source_ids)
        for layer in range(config.num_layers):
            lstm = layers.LSTM(units, return_sequences=True, return_state=True, dropout=config.dropout)
            memory, forward_h, _, backward_h, _ = layers.Bidirectional(
                lstm, name=stacked_name("encoder_bilstm", layer)
            )(memory)
        bridge = layers.Dense(units, activation="tanh", name="bridge")
        initial_state = bridge(layers.Concatenate(name="encoder_final")([forward_h, backward_h]))

        decoded = token_vectors(target_vocab_size, config.embedding_dim, "target")(decoder_input_ids)
        for layer in range(config.num_layers):
            lstm = layers.LSTM(
                units, return_sequences=True, dropout=config.dropout, name=stacked_name("decoder_lstm", layer)
            )
            decoded = lstm(decoded, initial_state=[initial_state, initial_state])

        if config.attention == "luong":
            # h_t W h_s as (W^T h_t) . h_s: project the query to the encoder's width, then a dot product.
            query = layers.Dense(2 * units, use_bias=False, name="attention_query")(decoded)
            context = layers.Attention(score_mode="dot", name="attention")([query, memory])
        else:
            query = layers.Dense(units, use_bias=False, name="attention_query")(decoded)
            keys = layers.Dense(units, use_bias=False, name="attention_key")(memory)
            context = layers.AdditiveAttention(name="attention")([query, memory, keys])  # its scale is Bahdanau's v
        combine = layers.Dense(units, activation="tanh", name="attention_combine")
        attentional = combine(layers.Concatenate(name="context_and_output")([context, decoded]))
        attentional = layers.Dropout(config.dropout, name="attentional_dropout")(attentional)
        output_layer = layers.Dense(target_vocab_size, activation="softmax", dtype="float32", name="decoder_output")
        return keras.Model([source_ids, decoder_input_ids], output_layer(attentional), name="attention_seq2seq")

    def inference(self, model: keras.Model) -> Inference:
        return AttentionInference(model)


class AttentionInference(Inference):
    """The decoder state holds each decoder layer's LSTM state and the encoder outputs it attends to.

    Beam search reorders every tensor of the state by beam, the encoder outputs included, which
    keeps `step` free of beam bookkeeping.
    """

    def __init__(self, model: keras.Model):
        self.source_vectors = find_token_vectors(model, "source")
        self.target_vectors = find_token_vectors(model, "target")
        self.encoder_layers = find_stacked(model, "encoder_bilstm")
        self.bridge = model.get_layer("bridge")
        self.decoder_cells = [layer.cell for layer in find_stacked(model, "decoder_lstm")]
        self.query_layer = model.get_layer("attention_query")
        names = {layer.name for layer in model.layers}
        self.key_layer = model.get_layer("attention_key") if "attention_key" in names else None  # bahdanau only
        self.attention_layer = model.get_layer("attention")
        self.combine_layer = model.get_layer("attention_combine")
        self.output_layer = model.get_layer("decoder_output")

    def encode(self, source_ids):
        mask = ops.not_equal(source_ids, PAD_ID)
        memory = self.source_vectors(source_ids)
        for layer in self.encoder_layers:
            memory, forward_h, _, backward_h, _ = layer(memory, mask=mask)
        initial = self.bridge(ops.concatenate([forward_h, backward_h], axis=-1))
        return {
            "decoder": [[initial, initial] for _ in self.decoder_cells],
            "memory": memory,
            "keys": self.key_layer(memory) if self.key_layer else memory,
            "mask": mask,
        }

    def step(self, tokens, state):
        output, decoder_state = step_cells(self.decoder_cells, self.target_vectors(tokens), state["decoder"])
        query = self.query_layer(output[:, None, :])
        context = self.attention_layer([query, state["memory"], state["keys"]], mask=[None, state["mask"]])
        attentional = self.combine_layer(ops.concatenate([context[:, 0], output], axis=-1))
        return self.output_layer(attentional), {**state, "decoder": decoder_state}
