"""The training and validation batches as tf.data pipelines."""

import numpy as np

from sequencer import batchers
from sequencer.data import Sequences
from sequencer.dataset import make_dataset, replica_slices


def test_dataset_batches_of_an_epoch_do_not_depend_on_the_first_epoch():
    source = Sequences(np.arange(4, 24, dtype=np.int32), np.array([1, 2, 3, 4, 5, 5]))
    target = Sequences(np.arange(4, 14, dtype=np.int32), np.array([2, 2, 2, 2, 1, 1]))
    batcher = batchers.get("padded")()

    def plan(epoch):
        lengths = np.stack([source.lengths, target.lengths], axis=1)
        return batcher.batches(lengths, 4, np.random.default_rng([0, epoch]))

    from_start = list(make_dataset(source, target, plan, range(0, 3), 2))
    resumed = list(make_dataset(source, target, plan, range(2, 3), 2))
    assert len(from_start) == 6 and len(resumed) == 2
    for (start_inputs, start_targets), (resumed_inputs, resumed_targets) in zip(from_start[4:], resumed):
        assert np.array_equal(start_targets, resumed_targets)
        assert all(np.array_equal(a, b) for a, b in zip(start_inputs, resumed_inputs))
    (source_ids, decoder_input), decoder_target = from_start[0]
    assert source_ids.shape[0] == 4 and decoder_input.shape == decoder_target.shape
    assert source_ids.shape[1] == max(int(np.count_nonzero(row)) for row in source_ids.numpy())  # own longest only


def test_replica_slices_give_every_replica_as_many_pairs():
    assert [part.tolist() for part in replica_slices(np.arange(4), 2)] == [[0, 2], [1, 3]]
    # A batch of tokens with an odd number of pairs repeats its first pair; one pair goes to both.
    odd = replica_slices(np.arange(25), 2)
    assert [len(part) for part in odd] == [13, 13]
    assert sorted(np.concatenate(odd).tolist()) == [0, *range(25)]
    assert [part.tolist() for part in replica_slices(np.array([7]), 2)] == [[7], [7]]
