import numpy as np
import pytest

from sequencer.vocabulary import END_ID, PAD_ID, SPECIALS, START_ID, UNK_ID, Vocabulary


def test_reserved_ids_come_first_and_real_characters_after():
    vocab = Vocabulary.build(["ba", "c"])
    assert (PAD_ID, START_ID, END_ID, UNK_ID) == (0, 1, 2, 3)
    assert len(vocab) == len(SPECIALS) + 3
    assert list(vocab.encode("abc")) == [4, 5, 6]


def test_characters_that_look_like_markers_are_ordinary_characters():
    # The original used TAB and newline as start and end markers; here they are just characters.
    vocab = Vocabulary.build(["a\tb\n<s></s>"])
    ids = vocab.encode("\t\n<")
    assert all(i >= len(SPECIALS) for i in ids)
    assert vocab.decode(vocab.encode("a\tb\n<s></s>")) == "a\tb\n<s></s>"


def test_unknown_characters_map_to_unknown_id():
    vocab = Vocabulary.build(["abc"])
    assert list(vocab.encode("aZc")) == [4, UNK_ID, 6]
    assert vocab.encode("aZc").dtype == np.int32


def test_decode_stops_at_end_and_drops_padding_and_start():
    vocab = Vocabulary.build(["ab"])
    assert vocab.decode([START_ID, 4, 5, END_ID, 4, PAD_ID]) == "ab"
    assert vocab.decode([4, PAD_ID, 5]) == "ab"


def test_json_round_trip():
    vocab = Vocabulary.build(["héllo wörld", "🐞"])
    again = Vocabulary.from_json(vocab.to_json())
    assert again.tokens == vocab.tokens
    assert list(again.encode("wörld🐞")) == list(vocab.encode("wörld🐞"))


@pytest.mark.parametrize("data", [[], {"tokens": ["a"]}, {"specials": list(SPECIALS), "tokens": "ab"}])
def test_from_json_rejects_other_shapes(data):
    with pytest.raises(ValueError):
        Vocabulary.from_json(data)
