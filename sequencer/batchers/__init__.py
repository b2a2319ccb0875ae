"""Batchers: each file in this folder is one, selectable as `batcher=<file name>`.

A batcher decides which pairs go together in a batch. The trainer pads each batch to its own
longest pair, so a batcher that groups pairs of similar length wastes less work on padding. To
add one, drop a file here with a docstring whose first line describes it and one `Batcher`
subclass.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from sequencer import plugins


class Batcher(ABC):
    @abstractmethod
    def batches(
        self, lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None, batch_tokens: int = 0
    ) -> list[np.ndarray]:
        """Index arrays, one per batch, that together hold every index of `lengths` once.

        `lengths[i]` is the (source, target) length of pair i. With `rng` the order is random
        (training, one call per epoch); without it, fixed (validation). Every batch holds
        `batch_size` pairs but one, so that every epoch has ceil(len(lengths) / batch_size) batches.
        With `batch_tokens`, a batch instead holds at most that many tokens by `pair_tokens`
        (a pair alone may hold more), and every epoch must have the same number of batches; a
        batcher that cannot do that raises ConfigError.
        """


def pair_tokens(lengths: np.ndarray) -> np.ndarray:
    """What a pair costs in a batch: its longer side, the target with its start or end marker."""
    return np.maximum(lengths[:, 0], lengths[:, 1] + 1)


def batch_cost(lengths: np.ndarray, batch: np.ndarray) -> int:
    """The tokens of a batch padded to its longest pair: pairs x the longer of the two padded sides."""
    return len(batch) * int(pair_tokens(lengths[batch]).max())


def padding_fraction(lengths: np.ndarray, batches: list[np.ndarray]) -> float:
    """The share of the positions of the padded batches, source and target sides, that hold padding."""
    real = padded = 0
    for batch in batches:
        source, target = lengths[batch, 0], lengths[batch, 1] + 1
        real += int(source.sum() + target.sum())
        padded += len(batch) * int(source.max() + target.max())
    return 1 - real / padded


def available() -> dict[str, str]:
    """{name: description} of every batcher file in this folder."""
    return plugins.discover(*__path__)


def get(name: str) -> type[Batcher]:
    return plugins.load_class(__name__, name, Batcher)
