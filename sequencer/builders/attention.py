"""Bidirectional LSTM encoder and an LSTM decoder attending to every encoder output (Luong or Bahdanau score)."""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers, ops

from sequencer.layers import stacked_name, step_cells, token_vectors
from sequencer.seq2seq import Seq2Seq
from sequencer.vocabulary import PAD_ID


@dataclass(frozen=True)
class AttentionSettings:
    latent_dim: int
    num_layers: int
    embedding_dim: int
    dropout: float
    attention: str  # luong or bahdanau


@keras.saving.register_keras_serializable(package="sequencer")
class AttentionSeq2Seq(Seq2Seq):
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
    one batched product. The decoding state carries the encoder outputs, which beam search
    reorders with the rest of the state.
    """

    Settings = AttentionSettings

    def __init__(self, source_vocab_size: int, target_vocab_size: int, settings: AttentionSettings, **kwargs):
        kwargs.setdefault("name", "attention_seq2seq")
        super().__init__(source_vocab_size, target_vocab_size, settings, **kwargs)
        units, dropout = settings.latent_dim, settings.dropout
        self.source_vectors = token_vectors(source_vocab_size, settings.embedding_dim, "source")
        self.target_vectors = token_vectors(target_vocab_size, settings.embedding_dim, "target")
        self.encoder_layers = [
            layers.Bidirectional(
                layers.LSTM(units, return_sequences=True, return_state=True, dropout=dropout),
                name=stacked_name("encoder_bilstm", i),
            )
            for i in range(settings.num_layers)
        ]
        self.encoder_final = layers.Concatenate(name="encoder_final")
        self.bridge = layers.Dense(units, activation="tanh", name="bridge")
        self.decoder_lstms = [
            layers.LSTM(units, return_sequences=True, dropout=dropout, name=stacked_name("decoder_lstm", i))
            for i in range(settings.num_layers)
        ]
        if settings.attention == "luong":
            # h_t W h_s as (W^T h_t) . h_s: project the query to the encoder's width, then a dot product.
            self.attention_query = layers.Dense(2 * units, use_bias=False, name="attention_query")
            self.attention_key = None
            self.attention = layers.Attention(score_mode="dot", name="attention")
        else:
            self.attention_query = layers.Dense(units, use_bias=False, name="attention_query")
            self.attention_key = layers.Dense(units, use_bias=False, name="attention_key")
            self.attention = layers.AdditiveAttention(name="attention")  # its scale is Bahdanau's v
        # A layer rather than ops.concatenate, so that the decoder's padding mask reaches the output.
        self.context_and_output = layers.Concatenate(name="context_and_output")
        self.attention_combine = layers.Dense(units, activation="tanh", name="attention_combine")
        self.attentional_dropout = layers.Dropout(dropout, name="attentional_dropout")
        self.output_layer = layers.Dense(
            target_vocab_size, activation="softmax", dtype="float32", name="decoder_output"
        )

    def call(self, inputs, training=False):
        source_ids, decoder_input_ids = inputs
        memory, initial = self._encode(source_ids, training)  # (B, S, 2 units), (B, units)
        decoded = self.target_vectors(decoder_input_ids)  # (B, T, E), masked where the ids are padding
        for lstm in self.decoder_lstms:
            decoded = lstm(decoded, initial_state=[initial, initial], training=training)  # (B, T, units)
        keys = self.attention_key(memory) if self.attention_key else memory
        context = self.attention([self.attention_query(decoded), memory, keys])  # (B, T, 2 units)
        attentional = self.attention_combine(self.context_and_output([context, decoded]))
        return self.output_layer(self.attentional_dropout(attentional, training=training))  # (B, T, V)

    def _encode(self, source_ids, training=False):
        """The last encoder layer's outputs (B, S, 2 units) and the decoder's initial state (B, units)."""
        memory = self.source_vectors(source_ids)
        for layer in self.encoder_layers:
            memory, forward_h, _, backward_h, _ = layer(memory, training=training)
        return memory, self.bridge(self.encoder_final([forward_h, backward_h]))

    def encode(self, source_ids, max_len):
        memory, initial = self._encode(source_ids)
        return {
            "decoder": [[initial, initial] for _ in self.decoder_lstms],
            "memory": memory,
            "keys": self.attention_key(memory) if self.attention_key else memory,
            "mask": ops.not_equal(source_ids, PAD_ID),
        }

    def step(self, tokens, state, index):
        output, decoder_state = step_cells(
            [lstm.cell for lstm in self.decoder_lstms], self.target_vectors(tokens), state["decoder"]
        )
        query = self.attention_query(output[:, None, :])
        context = self.attention([query, state["memory"], state["keys"]], mask=[None, state["mask"]])
        attentional = self.attention_combine(ops.concatenate([context[:, 0], output], axis=-1))
        return self.output_layer(attentional), {**state, "decoder": decoder_state}
