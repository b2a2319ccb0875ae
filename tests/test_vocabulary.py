import numpy as np
import pytest

from sequencer.vocabulary import (
    END_ID,
    PAD_ID,
    SPECIALS,
    START_ID,
    UNK_ID,
    Vocabulary,
    detokenize_words,
    tokenize_words,
)


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


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("Hello, world!", ["Hello", "￭,", "world", "￭!"]),
        ("L'homme est là.", ["L", "￭'￭", "homme", "est", "là", "￭."]),
        ("Va\u202f!", ["Va", "￭\u202f", "￭!"]),  # French's narrow no-break space is kept
        ("« Oui »", ["«", "Oui", "»"]),
        ("a -- b", ["a", "-", "￭-", "b"]),
    ],
)
def test_word_tokens_split_punctuation_and_detokenize_back(text, tokens):
    assert tokenize_words(text) == tokens
    assert detokenize_words(tokens) == text


def test_word_vocabulary_keeps_the_most_frequent_words_and_reads_the_rest_as_unknown():
    vocab = Vocabulary.build(["the cat sat.", "the dog sat.", "the cat ran."], level="word", max_size=4)
    assert vocab.tokens == ["the", "￭.", "cat", "sat"]  # by frequency, ties by text
    ids = vocab.encode("the dog sat.")
    assert list(ids) == [4, UNK_ID, 7, 5]
    assert vocab.decode([*ids, END_ID]) == "the <unk> sat."
    assert Vocabulary.from_json(vocab.to_json()) == vocab


def test_character_vocabulary_can_be_limited_too():
    vocab = Vocabulary.build(["aab", "ac"], max_size=1)
    assert vocab.tokens == ["a"] and list(vocab.encode("abc")) == [4, UNK_ID, UNK_ID]


def test_runs_saved_before_token_levels_load_as_character_vocabularies():
    assert Vocabulary.from_json({"specials": list(SPECIALS), "tokens": ["a"]}).level == "char"
