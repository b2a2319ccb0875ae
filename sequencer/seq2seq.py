"""The interface of every translation model: a Keras model that decoding can also drive one token at a time.

A `Seq2Seq` trains as an ordinary Keras model: `call([source ids, decoder input ids])` gives the
probabilities of the next target token at every position (teacher forcing). Decoding
(`search.py`) uses two more methods, over the same layers:

    state = model.encode(source_ids, max_len)               # (B, S) ids -> nested tensors, batch first
    probabilities, state = model.step(tokens, state, index)  # (B,) tokens at output position index -> (B, V)

`index` counts from 0 (the start marker) and stays below `max_len`. Every tensor of a state has
the batch as its first axis, so beam search reorders hypotheses with one gather per tensor; its
other dimensions may change from step to step (the Transformer's caches grow). Id 0 is padding:
it is masked in the encoder, and the probabilities carry the decoder inputs' padding mask, so
that Keras leaves padding out of the loss and the metrics.

Each model reads its hyperparameters from a small frozen dataclass, `Settings`, whose fields are
config keys: `create` fills it from a Config, and `get_config` saves it with the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, fields
from typing import Any

import keras
from keras import ops

from sequencer.config import Config

_RESERVED = ("source_vocab_size", "target_vocab_size")


class Seq2Seq(keras.Model):
    """An encoder-decoder over integer ids; subclasses define `Settings`, their layers, `call`, `encode` and `step`."""

    Settings: type  # a frozen dataclass whose fields are the config keys the model reads
    max_positions: int | None = None  # the longest sequence in tokens it can read or write; None: any

    def __init__(self, source_vocab_size: int, target_vocab_size: int, settings: Any, **kwargs):
        super().__init__(**kwargs)
        self.source_vocab_size = source_vocab_size
        self.target_vocab_size = target_vocab_size
        self.settings = settings

    @classmethod
    def create(cls, config: Config, source_vocab_size: int, target_vocab_size: int) -> Seq2Seq:
        """A new model with the settings of `config`, for vocabularies of these sizes (reserved ids included)."""
        settings = cls.Settings(**{item.name: getattr(config, item.name) for item in fields(cls.Settings)})
        return cls(source_vocab_size, target_vocab_size, settings)

    def build(self, input_shape=None):
        """Create every weight by running the model once on one token: Keras calls this when it loads a model."""
        if not self.built:
            ids = ops.ones((1, 2), "int32")
            self.call([ids, ids])
            self.built = True

    def call(self, inputs, training=False):
        """[source ids (B, S), decoder input ids (B, T)] -> next-token probabilities (B, T, V)."""
        raise NotImplementedError

    def encode(self, source_ids, max_len):
        """The decoder's state before its first step, for padded source ids (B, S)."""
        raise NotImplementedError

    def step(self, tokens, state, index):
        """(probabilities over target ids (B, V), new state) after reading `tokens` (B,) at output position `index`."""
        raise NotImplementedError

    def decoding_lengths(self, config: Config, longest_target: int) -> tuple[int, int]:
        """The (longest, shortest) translation in tokens that `config` asks for, within `max_positions`."""
        longest, shortest = config.output_lengths(longest_target)
        if self.max_positions:
            longest = min(longest, self.max_positions)
        return longest, min(shortest, longest)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "source_vocab_size": self.source_vocab_size,
            "target_vocab_size": self.target_vocab_size,
            **asdict(self.settings),
        }

    @classmethod
    def from_config(cls, config: dict) -> Seq2Seq:
        """The model `get_config` described, computing in the process's precision (Keras' global
        policy), as its layers, which it makes itself, do: the dtype policy it was saved with
        (mixed_bfloat16, for a run trained so) is left out, so that a model loads for training in
        the run's precision and for translating in float32 (`float32_policy`)."""
        config = dict(config)
        config.pop("dtype", None)
        names = {item.name for item in fields(cls.Settings)}
        settings = cls.Settings(**{name: config.pop(name) for name in names if name in config})
        return cls(config.pop(_RESERVED[0]), config.pop(_RESERVED[1]), settings, **config)


@contextmanager
def float32_policy() -> Iterator[None]:
    """Models made or loaded in the block compute in float32, whatever Keras' global policy (a
    process that trained in mixed precision sets one): translations are decoded in float32."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
