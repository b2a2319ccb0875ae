"""Batchers: each file in this folder is one, selectable as `batcher=<file name>`.

A batcher decides which pairs go together in a batch. The trainer pads each batch to its own
longest pair, so a batcher that groups pairs of similar length wastes less work on padding. To
add one, drop a file here with a docstring whose first line describes it and one `Batcher`
subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from sequencer import plugins


class Batcher(ABC):
    @abstractmethod
    def batches(self, lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
        """Index arrays, one per batch, that together hold every index of `lengths` once.

        `lengths[i]` is the (source, target) length of pair i. With `rng` the order is random
        (training, one call per epoch); without it, fixed (validation). Every batch holds
        `batch_size` pairs but one, so that every epoch has ceil(len(lengths) / batch_size) batches.
        """


def available() -> dict[str, str]:
    """{name: description} of every batcher file in this folder."""
    return plugins.discover(Path(__file__).parent)


def get(name: str) -> type[Batcher]:
    return plugins.load_class(__name__, name, Batcher)
