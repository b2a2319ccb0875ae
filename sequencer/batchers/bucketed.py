"""Pairs of similar length batched together, so that batches carry little padding."""

from __future__ import annotations

import numpy as np

from sequencer.batchers import Batcher, pair_tokens

# Pairs are sorted by length within pools of this many batches: large enough that neighbours have
# nearly equal lengths, small enough that which pairs meet in a batch still changes every epoch.
POOL_BATCHES = 100


class BucketedBatcher(Batcher):
    def batches(self, lengths, batch_size, rng, batch_tokens=0):
        if batch_tokens:
            batches = self._by_tokens(lengths, batch_tokens, rng)
        else:
            batches = self._by_pairs(lengths, batch_size, rng)
        if rng is not None:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _by_pairs(self, lengths, batch_size, rng):
        order = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
        pool_size = batch_size * POOL_BATCHES
        batches = []
        for start in range(0, len(order), pool_size):
            pool = order[start : start + pool_size]
            # By target length, then source length: the decoder's steps are most of the work.
            pool = pool[np.lexsort((lengths[pool, 0], lengths[pool, 1]))]
            batches += [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
        return batches

    def _by_tokens(self, lengths, budget, rng):
        """All pairs sorted by their cost in tokens (then target and source length, then at random),
        cut into the longest runs that fit the budget.

        The cuts depend only on the sorted costs, which are the same every epoch, so every epoch has
        as many batches; which pairs of equal lengths meet changes with `rng`.
        """
        cost = pair_tokens(lengths)
        tiebreak = np.arange(len(lengths)) if rng is None else rng.permutation(len(lengths))
        order = np.lexsort((tiebreak, lengths[:, 0], lengths[:, 1], cost))
        batches, start = [], 0
        for end, pair in enumerate(order, start=1):
            # Costs rise along `order`, so the batch [start, end) pads to the cost of its last pair.
            if end - start > 1 and (end - start) * cost[pair] > budget:
                batches.append(order[start : end - 1])
                start = end - 1
        batches.append(order[start:])
        return batches
