"""A prepared corpus read back: nothing is trusted that does not match its index."""

import json
import shutil
import zlib

import pytest
from conftest import tiny_config

from sequencer.corpus import INDEX_FILE, Corpus
from sequencer.errors import DataError
from sequencer.preparation import Preprocessor

CHECKSUM = "its checksum is not the one the index recorded"


@pytest.fixture
def prepared(tmp_path):
    corpus = Preprocessor(tiny_config(tmp_path / "original", shard_pairs="100")).load()
    copy = shutil.copytree(corpus.folder, tmp_path / "copy")
    return Corpus.open(copy)


def test_a_prepared_corpus_reads_its_shards_one_at_a_time(prepared):
    assert prepared.train_pairs == sum(shard.pairs for shard in prepared.corpora[0].shards) > 200
    source, target = prepared.read_shard(prepared.corpora[0].shards[0])
    assert len(source) == len(target) == prepared.corpora[0].shards[0].pairs
    assert (prepared.shard_lengths(prepared.corpora[0].shards[0])[:, 0] == source.lengths).all()


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda path: path.write_bytes(path.read_bytes()[:-2]), "its checksum is not the one the index recorded"),
        (
            lambda path: path.write_bytes(bytes(len(path.read_bytes()))),
            "its checksum is not the one the index recorded",
        ),
        (lambda path: path.unlink(), "is missing"),
    ],
    ids=["cut short", "overwritten", "missing"],
)
def test_a_damaged_shard_is_a_one_line_error_that_says_what_to_do(prepared, damage, problem):
    shard = prepared.corpora[0].shards[1]
    path = prepared.folder / f"{shard.name}.src"
    damage(path)
    with pytest.raises(DataError) as caught:
        prepared.read_shard(shard)
    message = str(caught.value)
    assert message.startswith(str(path)) and problem in message and "\n" not in message
    assert message.endswith(f"the prepared corpus is damaged: delete {prepared.folder} and it is prepared again")


@pytest.mark.parametrize(
    "index, problem",
    [
        ("{not json", "index.json: not valid JSON"),
        ('{"format": 99}', "index.json: format 99, not 1"),
        ('{"format": 1, "fingerprint": "x"}', "index.json: not the index of a prepared corpus (KeyError"),
    ],
    ids=["not json", "another format", "incomplete"],
)
def test_a_corrupt_index_is_a_one_line_error(prepared, index, problem):
    (prepared.folder / INDEX_FILE).write_text(index)
    with pytest.raises(DataError, match=problem.replace("(", r"\(")):
        Corpus.open(prepared.folder)


def test_ids_outside_the_vocabulary_are_refused_even_with_a_matching_checksum(prepared):
    shard = prepared.corpora[0].shards[0]
    path = prepared.folder / f"{shard.name}.tgt"
    data = bytearray(path.read_bytes())
    data[0:2] = (60000).to_bytes(2, "little")  # an id no vocabulary of the toy corpus has
    path.write_bytes(bytes(data))
    index = json.loads((prepared.folder / INDEX_FILE).read_text())

    index["corpora"][0]["shards"][0]["crc32"]["tgt"] = zlib.crc32(bytes(data))
    (prepared.folder / INDEX_FILE).write_text(json.dumps(index))
    reopened = Corpus.open(prepared.folder)
    with pytest.raises(DataError, match="it holds ids outside the vocabulary"):
        reopened.read_shard(reopened.corpora[0].shards[0])
