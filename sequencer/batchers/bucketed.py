"""Pairs of similar length batched together, so that batches carry little padding."""

from __future__ import annotations

import numpy as np

from sequencer.batchers import Batcher

# Pairs are sorted by length within pools of this many batches: large enough that neighbours have
# nearly equal lengths, small enough that which pairs meet in a batch still changes every epoch.
POOL_BATCHES = 100


class BucketedBatcher(Batcher):
    def batches(self, lengths, batch_size, rng):
        order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
        pool_size = batch_size * POOL_BATCHES
        batches = []
        for start in range(0, len(order), pool_size):
            pool = order[start : start + pool_size]
            # By target length, then source length: the decoder's steps are most of the work.
            pool = pool[np.lexsort((lengths[pool, 0], lengths[pool, 1]))]
            batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches
