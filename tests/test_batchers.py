import numpy as np
import pytest

from sequencer import batchers
from sequencer.data import Sequences, teacher_forcing
from sequencer.errors import ConfigError
from sequencer.vocabulary import END_ID, START_ID

_rng = np.random.default_rng(0)
_TARGET = _rng.integers(1, 60, size=1000)
# (source, target) lengths of 1,000 pairs; as in real translations, the two go together.
LENGTHS = np.stack([np.maximum(1, (0.7 * _TARGET).astype(int) + _rng.integers(-3, 4, size=1000)), _TARGET], axis=1)


@pytest.mark.parametrize("name", ["padded", "bucketed"])
def test_batches_cover_every_pair_once_in_a_fixed_number_of_batches(name):
    batcher = batchers.get(name)()
    for rng in (None, np.random.default_rng(1)):
        batches = batcher.batches(LENGTHS, 64, rng)
        assert len(batches) == 16 and max(map(len, batches)) == 64
        assert sorted(np.concatenate(batches)) == list(range(1000))


@pytest.mark.parametrize("name", ["padded", "bucketed"])
def test_order_depends_on_the_generator_only(name):
    batcher = batchers.get(name)()
    first = batcher.batches(LENGTHS, 64, np.random.default_rng([7, 3]))
    again = batcher.batches(LENGTHS, 64, np.random.default_rng([7, 3]))
    other = batcher.batches(LENGTHS, 64, np.random.default_rng([7, 4]))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_bucketing_pads_less_than_random_batches():
    def padded_cells(batches):
        return sum(len(batch) * LENGTHS[batch].max(axis=0).sum() for batch in batches)

    rng = np.random.default_rng(2)
    random_batches = batchers.get("padded")().batches(LENGTHS, 64, rng)
    bucketed_batches = batchers.get("bucketed")().batches(LENGTHS, 64, rng)
    assert padded_cells(bucketed_batches) < 0.7 * padded_cells(random_batches)


def test_teacher_forcing_adds_start_and_end_markers():
    target = Sequences(np.array([5, 6, 7, 8, 9], np.int32), np.array([2, 3]))
    decoder_input, decoder_target = teacher_forcing(target)
    assert [list(s) for s in decoder_input] == [[START_ID, 5, 6], [START_ID, 7, 8, 9]]
    assert [list(s) for s in decoder_target] == [[5, 6, END_ID], [7, 8, 9, END_ID]]


@pytest.mark.parametrize("budget", [120, 500, 2000])
def test_token_batches_fit_their_budget_cover_every_pair_and_keep_their_number(budget):
    batcher = batchers.get("bucketed")()
    counts = set()
    for rng in (None, np.random.default_rng(1), np.random.default_rng(2)):
        batches = batcher.batches(LENGTHS, 64, rng, batch_tokens=budget)
        assert all(batchers.batch_cost(LENGTHS, batch) <= budget for batch in batches)
        assert sorted(np.concatenate(batches)) == list(range(1000))
        counts.add(len(batches))
    assert len(counts) == 1  # the same number of batches every epoch, as Keras' steps_per_epoch needs
    first, second = (batcher.batches(LENGTHS, 64, np.random.default_rng(seed), batch_tokens=budget) for seed in (1, 2))
    # Which pairs of equal lengths meet follows the epoch's generator, not only the order of the batches.
    assert {tuple(sorted(batch)) for batch in first} != {tuple(sorted(batch)) for batch in second}


def test_token_batches_pad_less_than_batches_of_pairs():
    rng = np.random.default_rng(3)
    by_pairs = batchers.get("bucketed")().batches(LENGTHS, 64, rng)
    by_tokens = batchers.get("bucketed")().batches(LENGTHS, 64, rng, batch_tokens=1000)
    assert batchers.padding_fraction(LENGTHS, by_tokens) < batchers.padding_fraction(LENGTHS, by_pairs)
    assert batchers.padding_fraction(LENGTHS, by_tokens) < 0.1


def test_a_pair_longer_than_the_budget_is_a_batch_of_its_own():
    lengths = np.array([[3, 2], [50, 60], [4, 4]])
    batches = batchers.get("bucketed")().batches(lengths, 64, None, batch_tokens=20)
    assert [list(batch) for batch in batches] == [[0, 2], [1]]


def test_random_batches_cannot_be_filled_by_tokens():
    with pytest.raises(ConfigError, match="batcher=padded cannot fill batches by tokens"):
        batchers.get("padded")().batches(LENGTHS, 64, None, batch_tokens=500)
