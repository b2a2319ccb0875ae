"""Models: each file in this folder is one, selectable as `model=<file name>`.

A model file defines one subclass of `sequencer.seq2seq.Seq2Seq`: its `Settings` (the config keys
it reads), its layers, the training pass `call`, and `encode` and `step` over the same layers,
which is all decoding (`search.py`) needs, so greedy and beam search work with every model. To
add a model, drop a file here with a docstring whose first line describes it, and register the
class (and any custom layer) with `keras.saving.register_keras_serializable`, so that its saved
models load in safe mode. This module is
imported before TensorFlow starts, to list and check the model names; a model's file is imported
only when the model is used.
"""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from sequencer import plugins

if TYPE_CHECKING:
    from sequencer.seq2seq import Seq2Seq


def available() -> dict[str, str]:
    """{name: description} of every model file in this folder."""
    return plugins.discover(*__path__)


def get(name: str) -> type[Seq2Seq]:
    """The model class of the file `name`."""
    from sequencer.seq2seq import Seq2Seq

    return plugins.load_class(__name__, name, Seq2Seq)


def settings_of(name: str) -> frozenset[str]:
    """The config keys the model `name` reads: the fields of its `Settings` (this imports its file)."""
    return frozenset(item.name for item in fields(get(name).Settings))
