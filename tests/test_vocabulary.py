import json
from pathlib import Path

import numpy as np
import pytest

from sequencer.data import read_pairs
from sequencer.errors import ConfigError
from sequencer.vocabulary import (
    END_ID,
    PAD_ID,
    SPECIALS,
    START_ID,
    UNK_ID,
    SubwordVocabulary,
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


SHIPPED_CORPUS = Path(__file__).resolve().parents[1] / "training_files" / "fra.txt"


@pytest.fixture(scope="module")
def shipped_sentences():
    pairs, _ = read_pairs(SHIPPED_CORPUS)
    return [source for source, _ in pairs], [target for _, target in pairs]


def test_subwords_of_the_shipped_corpus_decode_to_every_sentence_exactly(shipped_sentences):
    sources, targets = shipped_sentences
    vocab = SubwordVocabulary.train(sources + targets, 8000, "unigram", "subwords.model")
    assert len(vocab) == 8000 and vocab.tokens[:2] == ["<0x00>", "<0x01>"]  # byte fallback: nothing is unknown
    for side in (sources, targets):
        values, lengths = vocab.encode_all(side)
        assert UNK_ID not in values and PAD_ID not in values and len(lengths) == len(side)
        decoded = [vocab.decode(ids) for ids in np.split(values, np.cumsum(lengths)[:-1])]
        assert decoded == side  # the narrow no-break space of French "!" included
    assert vocab.decode(vocab.encode("Hello 🐞 \u202f!")) == "Hello 🐞 \u202f!"  # unseen characters: UTF-8 bytes


@pytest.mark.parametrize("model_type", ["unigram", "bpe"])
def test_subword_vocabularies_reserve_the_same_ids_and_save_as_a_sentencepiece_file(tmp_path, model_type):
    texts = ["Hello there.", "Hello again, friend.", "Bonjour !", "Salut, l'ami."] * 20
    vocab = SubwordVocabulary.train(texts, 300, model_type, "subwords.model")
    assert vocab.processor.id_to_piece([PAD_ID, START_ID, END_ID, UNK_ID]) == list(SPECIALS)
    ids = vocab.encode("Hello again.")
    assert vocab.decode([START_ID, *ids, END_ID, 9, 9]) == "Hello again."  # stops at the end marker
    [(name, model)] = vocab.files().items()
    (tmp_path / name).write_bytes(model)
    again = Vocabulary.from_json(json.loads(json.dumps(vocab.to_json())), tmp_path)
    assert again == vocab and again.unit == "subword" and list(again.encode("Hello again.")) == list(ids)
    with pytest.raises(ValueError, match=r"SentencePiece model .* is missing"):
        Vocabulary.from_json(vocab.to_json(), tmp_path / "elsewhere")


def test_the_same_pairs_give_the_same_subword_model():
    texts = ["one two three", "two three four", "three four five"] * 30
    first, second = (SubwordVocabulary.train(texts, 300, "unigram", "s.model") for _ in range(2))
    assert first.model_proto == second.model_proto


def test_a_subword_vocabulary_too_small_for_the_characters_is_a_config_error():
    texts = [chr(code) * 3 for code in range(0x400, 0x480)]  # 128 distinct characters
    with pytest.raises(ConfigError, match="subword_vocab=300 is too small for these pairs: SentencePiece needs 389"):
        SubwordVocabulary.train(texts, 300, "unigram", "s.model")
