"""Model builders: each file in this folder is one, selectable as `model=<file name>`.

A builder makes the training model and, from a trained or loaded model, what decoding needs: an
`encode` function (source ids to a decoder state) and a `step` function (the previous tokens and
the state to next-token probabilities and the new state). Decoding (`search.py`) uses only these
two, so greedy and beam search work with every builder. To add a model, drop a file here with a
docstring whose first line describes it and one `ModelBuilder` subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

from sequencer import plugins
from sequencer.config import Config

if TYPE_CHECKING:  # this module is imported before TensorFlow starts, to find plug-ins
    import keras
    import tensorflow as tf


class Inference(ABC):
    """The two functions decoding needs, over the layers of one model. States are nested tensors."""

    @abstractmethod
    def encode(self, source_ids: tf.Tensor):
        """The decoder's initial state for a batch of padded source ids (batch, time)."""

    @abstractmethod
    def step(self, tokens: tf.Tensor, state):
        """(probabilities over target ids (batch, vocab), new state) after reading `tokens` (batch,)."""


class ModelBuilder(ABC):
    """Builds one kind of encoder-decoder; configured by the resolved `Config`."""

    def __init__(self, config: Config):
        self.config = config

    @abstractmethod
    def build(self, source_vocab_size: int, target_vocab_size: int) -> keras.Model:
        """The training model: [source ids, decoder input ids] -> next-token probabilities.

        Id 0 is padding and must be masked so that it counts neither in the loss nor the metrics.
        """

    @abstractmethod
    def inference(self, model: keras.Model) -> Inference:
        """`encode` and `step` over the layers of `model`, a model this builder built."""


def available() -> dict[str, str]:
    """{name: description} of every builder file in this folder."""
    return plugins.discover(Path(__file__).parent)


def get(name: str) -> type[ModelBuilder]:
    return plugins.load_class(__name__, name, ModelBuilder)
