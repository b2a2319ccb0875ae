"""Preparing a corpus: splits, filters, vocabularies and shards, found again by fingerprint, never half-written."""

import gzip
import logging
import os

import numpy as np
import pytest
from conftest import DATA, tiny_config

from sequencer import preparation
from sequencer.config import CorpusSource
from sequencer.corpus import INDEX_FILE
from sequencer.data import read_pairs
from sequencer.errors import ConfigError, DataError
from sequencer.preparation import Preprocessor
from sequencer.vocabulary import tokenize_words

TOY = DATA / "train" / "toy.txt"


def write_pairs(folder, name, pairs):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(f"{source}\t{target}\n" for source, target in pairs), encoding="utf-8")
    return folder / name


def training_pairs(corpus):
    """The (source, target) texts of every training pair, shard by shard."""
    pairs = []
    for entry in corpus.corpora:
        for shard in entry.shards:
            sources, targets = corpus.read_shard(shard)
            pairs += [(corpus.source_vocab.decode(s), corpus.target_vocab.decode(t)) for s, t in zip(sources, targets)]
    return pairs


def validation_pairs(corpus):
    decode = corpus.source_vocab.decode, corpus.target_vocab.decode
    return [(decode[0](s), decode[1](t)) for s, t in zip(corpus.val_source, corpus.val_target)]


def test_every_pair_is_trained_on_validated_or_tested_once_and_shards_deal_them_out(tmp_path):
    config = tiny_config(tmp_path, test_split="0.2", shard_pairs="50")
    corpus = Preprocessor(config).load()
    pairs = read_pairs(TOY)[0]
    trained, validated = training_pairs(corpus), validation_pairs(corpus)
    assert sorted(trained + validated + corpus.test_pairs) == sorted(pairs)
    assert len(corpus.corpora[0].shards) == 4  # about 185 to train on (less the test and validation pairs), 50 a shard
    assert all(20 <= shard.pairs <= 80 for shard in corpus.corpora[0].shards)  # dealt out at random
    # Every translation of a test source is held out, and only test sources are.
    test_sources = {source for source, _ in corpus.test_pairs}
    assert not test_sources & {source for source, _ in trained + validated}
    assert 40 <= len(corpus.test_pairs) <= 80 and 40 <= len(validated) <= 80
    again = Preprocessor(config.replace(model_dir=tmp_path / "elsewhere")).load()
    assert again.test_pairs == corpus.test_pairs and validation_pairs(again) == validated  # the seed's
    other = Preprocessor(config.replace(seed=8)).load()
    assert validation_pairs(other) != validated


def test_the_corpus_is_found_again_by_its_fingerprint_and_prepared_anew_when_it_changes(tmp_path, caplog):
    write_pairs(tmp_path / "train", "pairs.txt", read_pairs(TOY)[0][:100])
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), val_split="0.1")
    first = Preprocessor(config).load()
    with caplog.at_level(logging.INFO, logger="sequencer"):
        again = Preprocessor(config).load()
    assert again.folder == first.folder and not [line for line in caplog.messages if " pairs in " in line]
    assert Preprocessor(config.replace(max_len=20)).load().folder != first.folder  # another setting
    os.utime(tmp_path / "train" / "pairs.txt", ns=(1, 1))  # the file touched
    changed = Preprocessor(config).load()
    assert changed.folder != first.folder and changed.fingerprint != first.fingerprint


def test_filters_leave_out_long_lopsided_and_repeated_pairs_and_count_them(tmp_path):
    pairs = [
        ("Go.", "Va !"),
        ("Go.", "Va !"),
        ("Hi.", "Salut."),
        ("a" * 30, "b" * 5),
        ("Run!", "x" * 40),
        ("Hi.", "Salut."),
    ]
    pairs += [(f"pair {n}.", f"paire {n}.") for n in range(50)]
    write_pairs(tmp_path / "train", "pairs.txt", pairs)
    settings = {"train_dir": str(tmp_path / "train"), "val_split": "0", "monitor": "loss"}
    config = tiny_config(tmp_path, max_len="35", max_len_ratio="3", dedup="true", **settings)
    corpus = Preprocessor(config).load()
    assert sorted(training_pairs(corpus)) == sorted({*pairs} - {("a" * 30, "b" * 5), ("Run!", "x" * 40)})
    assert corpus.index["left_out"] == {"too_long": 1, "over_ratio": 1, "duplicates": 2}
    kept = Preprocessor(config.replace(max_len=0, max_len_ratio=0.0, dedup=False)).load()
    assert sorted(training_pairs(kept)) == sorted(pairs)


def test_word_vocabularies_count_words_and_keep_max_vocab(tmp_path):
    config = tiny_config(tmp_path, token_level="word", max_vocab="50")
    corpus = Preprocessor(config).load()
    assert corpus.source_vocab.level == corpus.target_vocab.level == "word"
    assert len(corpus.source_vocab.tokens) == len(corpus.target_vocab.tokens) == 50
    words = sum(len(tokenize_words(source)) for source, _ in read_pairs(TOY)[0])
    shard = corpus.corpora[0].shards[0]
    assert shard.source_tokens + int(corpus.val_source.lengths.sum()) == words


def test_sentencepiece_trains_on_a_sample_the_same_for_a_seed(tmp_path):
    settings = {"token_level": "subword", "subword_vocab": "400", "subword_sample": "200"}
    first = Preprocessor(tiny_config(tmp_path / "a", **settings)).load()
    again = Preprocessor(tiny_config(tmp_path / "b", **settings)).load()
    whole = Preprocessor(tiny_config(tmp_path / "c", **{**settings, "subword_sample": "0"})).load()
    assert first.source_vocab == again.source_vocab == first.target_vocab  # joint, and drawn alike
    assert first.source_vocab != whole.source_vocab  # 200 of the 480 sentences made another model
    assert sorted(training_pairs(first) + validation_pairs(first)) == sorted(read_pairs(TOY)[0])  # exact text


def test_given_vocabularies_encode_new_pairs_as_a_trained_run_reads_them(tmp_path):
    trained = Preprocessor(tiny_config(tmp_path)).load()
    toy = read_pairs(TOY)[0]
    new_pairs = [(toy[0][0], toy[5][1]), (toy[7][0], toy[9][1]), (toy[3][0], "Ж " + toy[3][1])]
    write_pairs(tmp_path / "new", "pairs.txt", new_pairs)
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "new"), val_split="0", monitor="loss")
    new = Preprocessor(config).load((trained.source_vocab, trained.target_vocab))
    assert (new.source_vocab, new.target_vocab) == (trained.source_vocab, trained.target_vocab)
    assert new.folder != Preprocessor(config).load().folder  # its own vocabularies would differ
    expected = [*new_pairs[:2], (toy[3][0], "<unk> " + toy[3][1])]  # a character the run never saw is unknown
    assert sorted(training_pairs(new)) == sorted(expected)
    assert new.index["unknown_tokens"] == {"source": 0, "target": 1}


def test_reverse_trains_the_other_direction_and_is_prepared_apart(tmp_path):
    config = tiny_config(tmp_path)  # no test split: both directions train on every pair
    forward, backward = (Preprocessor(config.replace(reverse=reverse)).load() for reverse in (False, True))
    assert backward.folder != forward.folder
    assert (backward.source_vocab, backward.target_vocab) == (forward.target_vocab, forward.source_vocab)
    swapped = sorted((target, source) for source, target in training_pairs(backward) + validation_pairs(backward))
    assert swapped == sorted(read_pairs(TOY)[0])


def test_num_samples_keeps_the_first_pairs_across_files_in_name_order(tmp_path):
    write_pairs(tmp_path / "train", "b.txt", [("b1", "B1"), ("b2", "B2")])
    write_pairs(tmp_path / "train", "a.txt", [("a1", "A1"), ("a2", "A2")])
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), num_samples="3", val_split="0", monitor="loss")
    assert sorted(training_pairs(Preprocessor(config).load())) == [("a1", "A1"), ("a2", "A2"), ("b1", "B1")]
    with pytest.raises(DataError, match=r"^num_samples=1 takes 1 pair\(s\); training needs at least 2$"):
        Preprocessor(config.replace(num_samples=1)).load()


def test_skipped_lines_are_one_warning(tmp_path, caplog):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "pairs.txt").write_bytes(b"a\tb\nbad\nc\td\ne\tf\n")
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), on_bad_line="skip", val_split="0", monitor="loss")
    with caplog.at_level(logging.WARNING, logger="sequencer"):
        corpus = Preprocessor(config).load()
    assert corpus.train_pairs == 3
    assert [line for line in caplog.messages if "malformed" in line] == [
        f"skipped 1 malformed line in {tmp_path / 'train'} (on_bad_line=skip)"
    ]


def test_too_few_pairs_for_a_split_is_a_data_error(tmp_path):
    write_pairs(tmp_path / "train", "pairs.txt", [("a", "b"), ("c", "d"), ("e", "f")])
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), val_split="0.01")
    with pytest.raises(DataError, match=r"val_split=0\.01 drew no validation pair from 3 pairs"):
        Preprocessor(config).load()
    with pytest.raises(ConfigError, match="leave no training pairs"):
        tiny_config(tmp_path, val_split="0.5", test_split="0.5")
    with pytest.raises(ConfigError, match=r"max_len_ratio=0\.5 would leave out every pair"):
        tiny_config(tmp_path, max_len_ratio="0.5")


def test_an_interrupted_preparation_leaves_nothing_to_trust(tmp_path, monkeypatch):
    config = tiny_config(tmp_path, shard_pairs="50")

    def interrupted(self, dedup):
        raise KeyboardInterrupt

    monkeypatch.setattr(preparation._ShardFile, "finish", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Preprocessor(config).load()
    assert list(config.prepared_folder.iterdir()) == []  # no folder, and no half-written one
    monkeypatch.undo()
    corpus = Preprocessor(config).load()
    assert (corpus.folder / INDEX_FILE).is_file() and len(corpus.corpora[0].shards) == 5


def test_several_corpora_with_weights_are_prepared_apart(tmp_path):
    write_pairs(tmp_path / "big", "pairs.txt", read_pairs(TOY)[0][:200])
    small = tmp_path / "small" / "pairs.txt.gz"
    small.parent.mkdir()
    with gzip.open(small, "wt", encoding="utf-8") as stream:
        stream.write("".join(f"{s}\t{t}\n" for s, t in read_pairs(TOY)[0][200:260]))
    config = tiny_config(tmp_path, train_dir=f"{tmp_path / 'big'}:1,{small}:3", val_split="0.1")
    corpus = Preprocessor(config).load()
    assert [entry.weight for entry in corpus.corpora] == [1.0, 3.0]
    assert [entry.sources for entry in corpus.corpora] == [[str(tmp_path / "big" / "pairs.txt")], [str(small)]]
    assert 170 <= corpus.corpora[0].pairs <= 200 and 45 <= corpus.corpora[1].pairs <= 60
    assert "in 2 corpora sampled as pairs.txt 25%, pairs.txt.gz 75%" in corpus.description()
    evenly = tuple(CorpusSource(source.path, 1.0) for source in config.train_dir)
    reweighted = Preprocessor(config.replace(train_dir=evenly)).load()
    assert reweighted.folder == corpus.folder  # weights choose the sampling, not the preparation
    assert np.isclose(sum(entry.weight for entry in reweighted.corpora), 2.0)


def test_worker_processes_encode_what_one_process_would(tmp_path, monkeypatch):
    config = tiny_config(tmp_path / "one", shard_pairs="60", token_level="subword", subword_vocab="400")
    alone = Preprocessor(config).load()
    monkeypatch.setattr(preparation, "PARALLEL_PAIRS", 1)  # so that the toy corpus goes to workers
    monkeypatch.setattr(preparation, "CHUNK_PAIRS", 50)
    together = Preprocessor(config.replace(model_dir=tmp_path / "many")).load()
    assert together.fingerprint == alone.fingerprint
    assert together.index["corpora"] == alone.index["corpora"] and together.index["valid"] == alone.index["valid"]
