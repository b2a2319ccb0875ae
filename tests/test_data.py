import numpy as np
import pytest
from conftest import tiny_config

from sequencer.data import Preprocessor, Sequences, read_pairs, split_by_source
from sequencer.errors import ConfigError, DataError
from sequencer.vocabulary import Vocabulary, tokenize_words


def write_bytes(tmp_path, data: bytes, name="pairs.txt"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_reads_pairs_skipping_bom_blank_lines_and_extra_columns(tmp_path):
    data = "\ufeffGo.\tVa !\tCC-BY 2.0 (France) Attribution\r\n\n   \nHi.\tSalut.\n".encode()
    pairs, skipped = read_pairs(write_bytes(tmp_path, data))
    assert pairs == [("Go.", "Va !"), ("Hi.", "Salut.")]
    assert skipped == 0


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"Go.\tVa !\nno tab here\n", 2, "no tab between source and target"),
        (b"Go.\tVa !\n\n\t Salut\n", 3, "the source side is empty"),
        (b"Go.\t \n", 1, "the target side is empty"),
        (b"Go.\tVa !\nCaf\xe9\tCaf\xc3\xa9\n", 2, "not valid UTF-8"),
    ],
)
def test_malformed_line_stops_with_file_and_line(tmp_path, data, line, problem):
    path = write_bytes(tmp_path, data)
    with pytest.raises(DataError) as caught:
        read_pairs(path)
    assert f"{path}:{line}: {problem}" in str(caught.value)


def test_skip_mode_skips_and_counts_bad_lines(tmp_path):
    path = write_bytes(tmp_path, b"Go.\tVa !\nno tab\nCaf\xe9\tx\nHi.\tSalut.\nx\t\n")
    pairs, skipped = read_pairs(path, on_bad_line="skip")
    assert pairs == [("Go.", "Va !"), ("Hi.", "Salut.")]
    assert skipped == 3


def test_preprocessor_warns_about_skipped_lines(tmp_path, caplog):
    (tmp_path / "train").mkdir()
    write_bytes(tmp_path / "train", b"a\tb\nbad\nc\td\ne\tf\n")
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), on_bad_line="skip", val_split="0", monitor="loss")
    corpus = Preprocessor(config).load()
    assert len(corpus.train_source) == 3
    assert "skipped 1 malformed line" in caplog.text


def test_num_samples_keeps_the_first_pairs_across_files_in_name_order(tmp_path):
    (tmp_path / "train").mkdir()
    write_bytes(tmp_path / "train", b"b1\tB1\nb2\tB2\n", "b.txt")
    write_bytes(tmp_path / "train", b"a1\tA1\na2\tA2\n", "a.txt")
    write_bytes(tmp_path / "train", b"not\tread\n", "notes.md")
    (tmp_path / "train" / "aa.txt").mkdir()  # a folder, whatever its name
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), num_samples="3")
    assert Preprocessor(config).read() == [("a1", "A1"), ("a2", "A2"), ("b1", "B1")]
    assert len(Preprocessor(config.replace(num_samples=0)).read()) == 4
    with pytest.raises(DataError, match=r"^num_samples=1 takes 1 pair\(s\); training needs at least 2$"):
        Preprocessor(config.replace(num_samples=1)).read()


def test_missing_or_empty_train_dir_is_a_data_error(tmp_path):
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DataError) as missing:
        Preprocessor(config).read()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as empty:
        Preprocessor(config.replace(train_dir=tmp_path / "empty")).read()
    assert "is not a folder" in str(missing.value)
    assert "has no *.txt files" in str(empty.value)


def test_split_is_deterministic_for_a_seed_and_disjoint(tmp_path):
    config = tiny_config(tmp_path)
    first, again = Preprocessor(config).load(), Preprocessor(config).load()
    other = Preprocessor(config.replace(seed=8)).load()
    assert len(first.val_source) == 60 and len(first.train_source) == 240
    assert np.array_equal(first.val_source.values, again.val_source.values)
    assert not np.array_equal(first.val_source.values, other.val_source.values)

    def texts(sources, targets):
        return [(first.source_vocab.decode(s), first.target_vocab.decode(t)) for s, t in zip(sources, targets)]

    train = texts(first.train_source, first.train_target)
    val = texts(first.val_source, first.val_target)
    assert sorted(train + val) == sorted(Preprocessor(config).read())


def test_sequences_hold_integer_ids_not_one_hot_vectors():
    vocab = Vocabulary.build(["abc", "de"])
    sequences = Sequences.encode(["abc", "de", "a"], vocab)
    assert sequences.values.dtype == np.int32
    assert sequences.values.shape == (6,)  # one id per character, whatever the vocabulary size
    assert list(sequences.lengths) == [3, 2, 1]
    picked = sequences.select(np.array([2, 0]))
    assert list(picked.values) == list(vocab.encode("aabc"))
    assert list(picked.lengths) == [1, 3]


def test_a_tiny_corpus_still_gets_a_validation_pair(tmp_path):
    (tmp_path / "train").mkdir()
    write_bytes(tmp_path / "train", b"a\tb\nc\td\ne\tf\n")
    corpus = Preprocessor(tiny_config(tmp_path, train_dir=str(tmp_path / "train"))).load()
    assert (len(corpus.train_source), len(corpus.val_source)) == (2, 1)


def test_test_split_holds_out_whole_source_sentences(tmp_path):
    config = tiny_config(tmp_path, test_split="0.2")
    pairs = Preprocessor(config).read()
    corpus = Preprocessor(config).load()
    test_sources = {source for source, _ in corpus.test_pairs}
    trained_sources = {corpus.source_vocab.decode(ids) for ids in [*corpus.train_source, *corpus.val_source]}
    assert not test_sources & trained_sources
    assert (
        60 <= len(corpus.test_pairs) < 70
        and len(corpus.test_pairs) + len(corpus.train_source) + len(corpus.val_source) == 300
    )
    assert all(pair in pairs for pair in corpus.test_pairs)
    assert corpus.test_pairs == Preprocessor(config).load().test_pairs  # the same for the same seed
    assert len(split_by_source(pairs, 0.0, np.random.default_rng(0))[0]) == 0


def test_splits_must_leave_training_pairs(tmp_path):
    with pytest.raises(ConfigError) as caught:
        tiny_config(tmp_path, val_split="0.5", test_split="0.5")
    assert "leave no training pairs" in str(caught.value)


def test_word_level_corpus_counts_words_and_keeps_max_vocab(tmp_path):
    config = tiny_config(tmp_path, token_level="word", max_vocab="50")
    corpus = Preprocessor(config).load()
    assert corpus.source_vocab.level == corpus.target_vocab.level == "word"
    assert len(corpus.source_vocab.tokens) == len(corpus.target_vocab.tokens) == 50
    words = sum(len(tokenize_words(source)) for source, _ in Preprocessor(config).read())
    assert corpus.train_source.lengths.sum() + corpus.val_source.lengths.sum() == words
