"""Pairs in random order, each batch padded to its own longest pair."""

from __future__ import annotations

import numpy as np

from sequencer.batchers import Batcher
from sequencer.errors import ConfigError


class PaddedBatcher(Batcher):
    def batches(self, lengths, batch_size, rng, batch_tokens=0):
        if batch_tokens:  # random pairs filled up to a budget would make a different number of batches each epoch
            raise ConfigError("batcher=padded cannot fill batches by tokens; use batcher=bucketed with batch_tokens")
        order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
