"""Pair files read line by line (plain or gzip), their errors, and the ids sentences become."""

import gzip

import numpy as np
import pytest

from sequencer.config import CorpusSource
from sequencer.data import Sequences, corpus_files, read_pairs
from sequencer.errors import DataError
from sequencer.vocabulary import Vocabulary


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


def test_sequences_hold_integer_ids_not_one_hot_vectors():
    vocab = Vocabulary.build(["abc", "de"])
    sequences = Sequences.encode(["abc", "de", "a"], vocab)
    assert sequences.values.dtype == np.int32
    assert sequences.values.shape == (6,)  # one id per character, whatever the vocabulary size
    assert list(sequences.lengths) == [3, 2, 1]
    picked = sequences.select(np.array([2, 0]))
    assert list(picked.values) == list(vocab.encode("aabc"))
    assert list(picked.lengths) == [1, 3]


def test_gzip_files_read_as_plain_ones(tmp_path):
    data = b"Go.\tVa !\nHi.\tSalut.\n"
    with gzip.open(tmp_path / "pairs.txt.gz", "wb") as stream:
        stream.write(data)
    assert read_pairs(tmp_path / "pairs.txt.gz") == read_pairs(write_bytes(tmp_path, data))


def test_a_train_dir_entry_is_a_folder_of_pair_files_or_a_file(tmp_path):
    (tmp_path / "train").mkdir()
    for name in ("b.txt", "a.txt.gz", "notes.md"):
        (tmp_path / "train" / name).write_bytes(b"")
    (tmp_path / "train" / "aa.txt").mkdir()  # a folder, whatever its name
    assert [path.name for path in corpus_files(CorpusSource(tmp_path / "train"))] == [
        "a.txt.gz",
        "b.txt",
    ]  # in name order
    assert corpus_files(CorpusSource(tmp_path / "train" / "notes.md")) == [tmp_path / "train" / "notes.md"]
    with pytest.raises(DataError, match=r"train_dir .*nowhere does not exist; set train_dir in the config file"):
        corpus_files(CorpusSource(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"has no \*\.txt or \*\.txt\.gz files"):
        corpus_files(CorpusSource(tmp_path / "empty"))
