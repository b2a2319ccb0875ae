"""The Transformer (Vaswani et al., 2017) of KerasHub layers: pre-layer-norm stacks, tied embeddings."""

from __future__ import annotations

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass

import keras
import keras_hub
import tensorflow as tf
from keras import layers, ops
from keras.src.backend.tensorflow import core as keras_tensorflow_core

from sequencer.layers import TokenProbabilities
from sequencer.seq2seq import Seq2Seq
from sequencer.vocabulary import PAD_ID

# The longest sequence, in tokens, that a model with learned positions can read or write.
MAX_POSITIONS = 1024
# Positions of the decoder's self-attention cache when decoding starts; it doubles when full.
# Every step reads and rewrites the whole cache (KerasHub's update is a copy), so one sized for
# the usual sentence rather than for `max_len` costs less; doubling keeps its shapes few. On the
# shipped corpus (translations of about 8 subwords), 8 decodes 17% faster than 16 and 9% faster than 4.
INITIAL_CACHE = 8


@dataclass(frozen=True)
class TransformerSettings:
    num_layers: int
    model_dim: int
    num_heads: int
    ffn_dim: int
    dropout: float
    positions: str  # sinusoidal or learned
    token_level: str
    joint_vocab: bool
    decoder_layers: int = 0  # 0: as many as num_layers, as in runs saved before the key existed

    @property
    def decoder_depth(self) -> int:
        return self.decoder_layers or self.num_layers


@keras.saving.register_keras_serializable(package="sequencer")
class TransformerSeq2Seq(Seq2Seq):
    """`num_layers` encoder layers and `decoder_layers` decoder layers (0: as many) of width
    `model_dim`, `num_heads` attention heads and a feed-forward layer of `ffn_dim` units, from
    KerasHub (`TransformerEncoder`, `TransformerDecoder`).

    Each layer normalises its inputs before attention and before the feed-forward layer
    (pre-layer-norm: `normalize_first=True`), which trains without the careful warm-up the
    original post-norm model needs; a last layer norm closes each stack. Token embeddings are
    scaled by sqrt(model_dim) and added to sinusoidal or learned positions. The target embedding
    is also the output projection (tied, through Keras' `ReversibleEmbedding`), and with a joint
    subword vocabulary the source shares it too: one table of `vocab x model_dim` weights.

    Padding is masked in every attention (the encoder's, the decoder's self-attention and its
    attention to the source), and the decoder's self-attention is causal. Decoding runs the same
    decoder layers one position at a time with KerasHub's key/value caches: `encode` computes the
    source side once, including each layer's cross-attention keys and values, and every `step`
    adds one position to the self-attention cache instead of reading the whole prefix again (the
    cache starts with room for `INITIAL_CACHE` positions and doubles when full).
    """

    Settings = TransformerSettings

    def __init__(self, source_vocab_size: int, target_vocab_size: int, settings: TransformerSettings, **kwargs):
        kwargs.setdefault("name", "transformer_seq2seq")
        super().__init__(source_vocab_size, target_vocab_size, settings, **kwargs)
        d, dropout = settings.model_dim, settings.dropout
        if d % settings.num_heads:
            raise ValueError(f"model_dim={d} is not a multiple of num_heads={settings.num_heads}")
        self.head_dim = d // settings.num_heads
        self.target_embedding = _token_embedding(target_vocab_size, d, "target_embedding")  # and output projection
        self.shares_embeddings = settings.token_level == "subword" and settings.joint_vocab
        self.max_positions = MAX_POSITIONS if settings.positions == "learned" else None
        if not self.shares_embeddings:
            self.source_embedding = _token_embedding(source_vocab_size, d, "source_embedding")
        if settings.positions == "learned":
            self.source_positions = keras_hub.layers.PositionEmbedding(MAX_POSITIONS, name="source_positions")
            self.target_positions = keras_hub.layers.PositionEmbedding(MAX_POSITIONS, name="target_positions")
        else:
            self.source_positions = self.target_positions = keras_hub.layers.SinePositionEncoding(name="positions")
        self.embedding_dropout = layers.Dropout(dropout, name="embedding_dropout")
        layer_settings = {"intermediate_dim": settings.ffn_dim, "num_heads": settings.num_heads, "dropout": dropout}
        self.encoder_layers = [
            keras_hub.layers.TransformerEncoder(**layer_settings, normalize_first=True, name=f"encoder_layer_{i}")
            for i in range(settings.num_layers)
        ]
        self.decoder_layers = [
            keras_hub.layers.TransformerDecoder(**layer_settings, normalize_first=True, name=f"decoder_layer_{i}")
            for i in range(settings.decoder_depth)
        ]
        self.encoder_norm = layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")
        self.decoder_norm = layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
        self.probabilities = TokenProbabilities(name="probabilities")

    def call(self, inputs, training=False):
        source_ids, decoder_input_ids = inputs  # (B, S), (B, T)
        memory, source_mask = self._encode(source_ids, training)  # (B, S, D), (B, S)
        x = self._embed(self.target_embedding, self.target_positions, decoder_input_ids, 0, training)  # (B, T, D)
        target_mask = ops.not_equal(decoder_input_ids, PAD_ID)
        for layer in self.decoder_layers:
            x = layer(x, memory, decoder_padding_mask=target_mask, encoder_padding_mask=source_mask, training=training)
        logits = self.target_embedding(self.decoder_norm(x), reverse=True)  # (B, T, V)
        return self.probabilities([logits, decoder_input_ids])

    def encode(self, source_ids, max_len):
        """The source side, computed once: the encoder's output and mask, each decoder layer's
        cross-attention keys and values, and an empty self-attention cache."""
        memory, source_mask = self._encode(source_ids)
        batch, heads, head_dim = ops.shape(source_ids)[0], self.settings.num_heads, self.head_dim
        self_caches, cross_caches = [], []
        for layer in self.decoder_layers:
            # KerasHub fills a cross-attention cache when called with cross_attention_cache_update_index=0;
            # the one-position query it is called with here is thrown away (its self-attention cache
            # has two positions: Keras warns about a softmax over one).
            with core_slice_update():
                _, _, cross_cache = layer(
                    ops.zeros((batch, 1, self.settings.model_dim), memory.dtype),
                    memory,
                    encoder_padding_mask=source_mask,
                    self_attention_cache=ops.zeros((batch, 2, 2, heads, head_dim), memory.dtype),
                    self_attention_cache_update_index=0,
                    cross_attention_cache=ops.zeros((batch, 2, ops.shape(memory)[1], heads, head_dim), memory.dtype),
                    cross_attention_cache_update_index=0,
                )
            capacity = ops.minimum(max_len, INITIAL_CACHE)  # a tensor: the cache's length is not fixed in the graph
            self_caches.append(ops.zeros((batch, 2, capacity, heads, head_dim), memory.dtype))  # (B, 2, C, H, Dh)
            cross_caches.append(cross_cache)  # (B, 2, S, H, Dh)
        return {"memory": memory, "source_mask": source_mask, "self_caches": self_caches, "cross_caches": cross_caches}

    def step(self, tokens, state, index):
        x = self._embed(self.target_embedding, self.target_positions, tokens[:, None], index, False)  # (B, 1, D)
        self_caches = []
        for layer, self_cache, cross_cache in zip(self.decoder_layers, state["self_caches"], state["cross_caches"]):
            self_cache = ops.cond(  # full: twice as long
                index < ops.shape(self_cache)[2],
                lambda cache=self_cache: cache,
                lambda cache=self_cache: ops.concatenate([cache, ops.zeros_like(cache)], axis=2),
            )
            with core_slice_update():
                x, self_cache, _ = layer(
                    x,
                    state["memory"],
                    encoder_padding_mask=state["source_mask"],
                    self_attention_cache=self_cache,
                    self_attention_cache_update_index=index,
                    cross_attention_cache=cross_cache,
                    cross_attention_cache_update_index=None,  # the source's keys and values stay as encode made them
                )
            self_caches.append(self_cache)
        logits = self.target_embedding(self.decoder_norm(x), reverse=True)[:, 0]  # (B, V)
        return ops.softmax(ops.cast(logits, "float32")), {**state, "self_caches": self_caches}

    def _encode(self, source_ids, training=False):
        source_mask = ops.not_equal(source_ids, PAD_ID)  # (B, S)
        embedding = self.target_embedding if self.shares_embeddings else self.source_embedding
        x = self._embed(embedding, self.source_positions, source_ids, 0, training)  # (B, S, D)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=source_mask, training=training)
        return self.encoder_norm(x), source_mask

    def _embed(self, embedding, positions, ids, start_index, training):
        """Token vectors scaled by sqrt(model_dim), plus positions from `start_index` on, then dropout."""
        x = embedding(ids) * ops.cast(math.sqrt(self.settings.model_dim), embedding.compute_dtype)
        return self.embedding_dropout(x + positions(x, start_index=start_index), training=training)


_SLICE_UPDATE_LOCK = threading.RLock()


@contextmanager
def core_slice_update():
    """Keras' `ops.slice_update` as TensorFlow's core `TensorStridedSliceUpdate` op, while
    KerasHub's cached attention writes the decoding caches with it.

    Keras 3's TensorFlow backend implements slice_update with XLA's `XlaDynamicUpdateSlice`, an op
    TensorFlow runs by compiling it with XLA on demand: a decoding graph holding it, and so an
    export, would need XLA for the device it runs on (TensorFlow Serving fails on it on a GPU,
    tensorflow/serving#2217). The core op has a kernel for every device and writes the same
    values. Keras is restored on leaving; the lock keeps threads that decode at once from
    restoring it in the wrong order.

    This is the project's one use of a private Keras module, `keras.src.backend.tensorflow.core`
    of Keras 3.15 (slice_update has used dynamic_update_slice since keras-team/keras-core#356);
    tests/test_export.py's test that an export holds core TensorFlow ops only fails if a Keras
    release moves it or the patch stops taking effect.
    """
    with _SLICE_UPDATE_LOCK:
        keras_slice_update = keras_tensorflow_core.slice_update
        keras_tensorflow_core.slice_update = _strided_slice_update
        try:
            yield
        finally:
            keras_tensorflow_core.slice_update = keras_slice_update


def _strided_slice_update(inputs, start_indices, updates):
    """`updates` written into `inputs` from `start_indices` on (Keras' slice_update), with core ops."""
    begin = tf.stack([tf.cast(index, tf.int32) for index in start_indices])
    end = begin + tf.shape(updates, out_type=tf.int32)
    return tf.raw_ops.TensorStridedSliceUpdate(
        input=inputs, begin=begin, end=end, strides=tf.ones_like(begin), value=updates
    )


def _token_embedding(vocab_size: int, model_dim: int, name: str) -> layers.Layer:
    """A token table that can also project vectors back onto the vocabulary (`reverse=True`).

    Initialised with a standard deviation of model_dim ** -0.5, so that scaled by sqrt(model_dim)
    its vectors have unit variance, as in Vaswani et al.
    """
    initializer = keras.initializers.RandomNormal(stddev=model_dim**-0.5)
    return keras.layers.ReversibleEmbedding(
        vocab_size, model_dim, tie_weights=True, embeddings_initializer=initializer, name=name
    )
