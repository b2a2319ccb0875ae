"""The stream of training batches: deterministic, resumable at any batch, weighted, split among workers."""

import numpy as np
import pytest
from conftest import DATA, tiny_config

from sequencer.data import Sequences, read_pairs
from sequencer.dataset import BatchStream, pad_batch, replica_slices
from sequencer.preparation import Preprocessor
from sequencer.vocabulary import END_ID, START_ID


def batch_keys(batches, count):
    """The first `count` batches as comparable tuples: each pair's source and target ids."""
    found = []
    for source, target, batch in batches:
        found.append(tuple((tuple(source.select([i]).values), tuple(target.select([i]).values)) for i in batch))
        if len(found) == count:
            return found
    return found


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return Preprocessor(tiny_config(tmp_path_factory.mktemp("stream"), shard_pairs="60")).load()


@pytest.mark.parametrize("batch_tokens", ["0", "150"])
def test_the_stream_resumed_at_any_batch_is_the_stream(corpus, tmp_path, batch_tokens):
    config = tiny_config(tmp_path, shard_pairs="60", batch_size="16", batch_tokens=batch_tokens)
    stream = BatchStream(config, corpus)
    per_pass = stream.batches_per_pass()
    whole = batch_keys(stream.batches(0), 3 * per_pass)
    for start in (1, per_pass - 1, per_pass, per_pass + 5, 2 * per_pass + 3):  # within shards, passes, at their ends
        assert batch_keys(BatchStream(config, corpus).batches(start), 10) == whole[start : start + 10]
    first_pass = [pair for batch in whole[:per_pass] for pair in batch]
    assert len(first_pass) == len(set(first_pass)) == corpus.train_pairs  # every pair once a pass
    assert whole[:per_pass] != whole[per_pass : 2 * per_pass]  # in another order the next pass


def test_weights_choose_how_often_each_corpus_gives_a_batch(tmp_path):
    pairs = read_pairs(DATA / "train" / "toy.txt")[0]
    for name, part in (("a", pairs[:150]), ("b", pairs[150:])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pairs.txt").write_text("".join(f"{s}\t{t}\n" for s, t in part), encoding="utf-8")
    config = tiny_config(tmp_path, train_dir=f"{tmp_path / 'a'}:1,{tmp_path / 'b'}:3", batch_size="8")
    corpus = Preprocessor(config).load()
    stream = BatchStream(config, corpus)
    sources_of_b = {
        tuple(s) for entry in corpus.corpora[1:] for shard in entry.shards for s in corpus.read_shard(shard)[0]
    }
    drawn = batch_keys(stream.batches(0), 2000)
    from_b = sum(pair[0] in sources_of_b for pair in (batch[0] for batch in drawn))
    assert 0.72 <= from_b / len(drawn) <= 0.78  # 3 of 4
    assert batch_keys(BatchStream(config, corpus).batches(777), 30) == drawn[777:807]


def test_workers_stream_shards_of_their_own_with_smaller_batches(corpus, tmp_path):
    config = tiny_config(tmp_path, shard_pairs="60", batch_size="16")
    parts = [BatchStream(config, corpus, part, 2) for part in (0, 1)]
    shards = [{shard.name for shard in part.shards[0]} for part in parts]
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == len(corpus.corpora[0].shards)
    assert parts[0].batch_size == 8
    pairs = [
        {pair for batch in batch_keys(part.batches(0), part.batches_per_pass()) for pair in batch} for part in parts
    ]
    assert not pairs[0] & pairs[1] and len(pairs[0] | pairs[1]) == corpus.train_pairs


def test_a_padded_batch_holds_the_source_and_the_target_with_its_markers():
    source = Sequences(np.array([5, 6, 7, 8, 9], np.int32), np.array([2, 3]))
    target = Sequences(np.array([10, 11, 12], np.int32), np.array([1, 2]))
    (source_ids, decoder_input), decoder_target = pad_batch(source, target, np.array([1, 0]), (3, 3))
    assert source_ids.tolist() == [[7, 8, 9], [5, 6, 0]]
    assert decoder_input.tolist() == [[START_ID, 11, 12], [START_ID, 10, 0]]
    assert decoder_target.tolist() == [[11, 12, END_ID], [10, END_ID, 0]]


def test_replica_slices_give_every_replica_as_many_pairs():
    assert [part.tolist() for part in replica_slices(np.arange(4), 2)] == [[0, 2], [1, 3]]
    # A batch of tokens with an odd number of pairs repeats its first pair; one pair goes to both.
    odd = replica_slices(np.arange(25), 2)
    assert [len(part) for part in odd] == [13, 13]
    assert sorted(np.concatenate(odd).tolist()) == [0, *range(25)]
    assert [part.tolist() for part in replica_slices(np.array([7]), 2)] == [[7], [7]]
