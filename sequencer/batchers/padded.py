"""Pairs in random order, each batch padded to its own longest pair."""

from __future__ import annotations

import numpy as np

from sequencer.batchers import Batcher


class PaddedBatcher(Batcher):
    def batches(self, lengths, batch_size, rng):
        order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
