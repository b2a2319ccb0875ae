"""A prepared corpus: the training pairs as ids in shards on disk, read one shard at a time.

`preparation.prepare` writes it once per corpus and settings; `Corpus.open` reads its
index, vocabularies, validation pairs and test pairs, and `read_shard` one shard of training
pairs when the batches come to it, so that memory holds a shard, not the corpus.

    prepared/<fingerprint>/
        index.json             written last: the settings, the input files, the counts, every shard and its checksum
        vocab.json, *.model    the vocabularies (see vocabulary.save_vocabularies)
        train-C-NNNNN.*        shard NNNNN of corpus C: .src and .tgt (the ids of each side, end to end),
                               .len (the two lengths of each pair)
        valid.*                the validation pairs, in the shards' format
        test.txt               the held-out test pairs, as text (source<TAB>target)

Shards are raw NumPy arrays (`ndarray.tofile`), not TFRecords: a shard is read whole with
`np.fromfile`, with no parsing, and batched by the batcher plug-ins' NumPy code as an in-memory
corpus is; docs/scaling.md says more. Nothing is trusted that does not match the index: a file of
the wrong size or checksum, or ids outside the vocabulary, is a DataError naming it.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from sequencer.data import Sequences, read_pairs
from sequencer.errors import DataError
from sequencer.files import read_json
from sequencer.vocabulary import Vocabulary, load_vocabularies

FORMAT = 1  # of index.json and the shards; a folder of another format is prepared again
INDEX_FILE = "index.json"
TEST_FILE = "test.txt"
VALID_SHARD = "valid"
SHARD_PARTS = ("src", "tgt", "len")  # the files of a shard, by suffix


@dataclass(frozen=True)
class Shard:
    """One shard's record in the index: its name (the files' stem), pairs, tokens and checksums."""

    name: str
    pairs: int
    source_tokens: int
    target_tokens: int
    crc32: dict[str, int]  # of each file, by suffix

    @classmethod
    def from_json(cls, data: dict) -> Shard:
        return cls(data["name"], data["pairs"], data["source_tokens"], data["target_tokens"], dict(data["crc32"]))


@dataclass(frozen=True)
class CorpusShards:
    """One corpus of `train_dir` (all of it, unless weights name several): its sources, shards and weight."""

    sources: list[str]
    pairs: int
    shards: list[Shard]
    weight: float


class Corpus:
    """A prepared corpus opened for training: vocabularies, validation and test pairs in memory, the
    training pairs in shards read by `read_shard`.

    `weights` are the sampling weights of its corpora (train_dir's, which may change between runs
    without preparing again); None weighs every corpus alike.
    """

    def __init__(self, folder: Path, index: dict, weights: list[float] | None = None):
        self.folder = folder
        self.index = index
        self.fingerprint: str = index["fingerprint"]
        self.source_vocab, self.target_vocab = load_vocabularies(folder)
        self.dtype = np.dtype(index["dtype"])
        corpora = index["corpora"]
        weights = weights or [1.0] * len(corpora)
        self.corpora = [
            CorpusShards(
                entry["sources"], entry["pairs"], [Shard.from_json(shard) for shard in entry["shards"]], weight
            )
            for entry, weight in zip(corpora, weights)
        ]
        self.val_source, self.val_target = self.read_shard(Shard.from_json(index["valid"]))
        self.test_count: int = index["test_pairs"]
        self.max_source_len: int = index["max_source_len"]
        self.max_target_len: int = index["max_target_len"]

    @classmethod
    def open(cls, folder: Path, weights: list[float] | None = None) -> Corpus:
        """The prepared corpus in `folder`; DataError if its index is missing, damaged or of another format."""
        try:
            index = read_json(folder / INDEX_FILE)
            if index.get("format") != FORMAT:
                raise DataError(f"{folder / INDEX_FILE}: format {index.get('format')!r}, not {FORMAT}")
            corpus = cls(folder, index, weights)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, DataError):
                raise
            problem = f"{type(error).__name__}: {error}"
            raise DataError(f"{folder / INDEX_FILE}: not the index of a prepared corpus ({problem})") from None
        if weights is not None and len(weights) != len(corpus.corpora):
            raise DataError(f"{folder} holds {len(corpus.corpora)} corpora, but train_dir weighs {len(weights)}")
        return corpus

    @property
    def train_pairs(self) -> int:
        return sum(corpus.pairs for corpus in self.corpora)

    @property
    def test_file(self) -> Path | None:
        """The held-out test pairs, source<TAB>target, as text; None without any."""
        return self.folder / TEST_FILE if self.test_count else None

    @cached_property
    def test_pairs(self) -> list[tuple[str, str]]:
        """The held-out test pairs, read when first asked for (at the end of training, to score them)."""
        return read_pairs(self.test_file)[0] if self.test_file else []

    def read_shard(self, shard: Shard) -> tuple[Sequences, Sequences]:
        """The source and target ids of a shard, checked against the index and the vocabularies."""
        parts = {part: self.folder / f"{shard.name}.{part}" for part in SHARD_PARTS}
        data = {part: _read_bytes(path, self.folder) for part, path in parts.items()}
        for part, path in parts.items():
            if zlib.crc32(data[part]) != shard.crc32[part]:
                raise self._damaged(path, "its checksum is not the one the index recorded")
        if len(data["len"]) % 8 or any(len(data[part]) % self.dtype.itemsize for part in ("src", "tgt")):
            raise self._damaged(parts["len"], "its files are not whole arrays")
        lengths = np.frombuffer(data["len"], np.int32).reshape(-1, 2)
        source, target = (np.frombuffer(data[part], self.dtype) for part in ("src", "tgt"))  # uint16: half the memory
        expected = (shard.pairs, shard.source_tokens, shard.target_tokens)
        if (len(lengths), len(source), len(target)) != expected or (lengths < 1).any():
            raise self._damaged(parts["len"], "its lengths do not add up to the index's pairs and tokens")
        if lengths[:, 0].sum() != len(source) or lengths[:, 1].sum() != len(target):
            raise self._damaged(parts["len"], "its lengths do not add up to its ids")
        for ids, vocab, path in ((source, self.source_vocab, parts["src"]), (target, self.target_vocab, parts["tgt"])):
            if len(ids) and (ids.min() < 0 or ids.max() >= len(vocab)):
                raise self._damaged(path, f"it holds ids outside the vocabulary of {len(vocab)}")
        return Sequences(source, lengths[:, 0].astype(np.int64)), Sequences(target, lengths[:, 1].astype(np.int64))

    def train_sequences(self) -> tuple[Sequences, Sequences]:
        """Every training pair's source and target ids, all shards' together: for a small corpus
        only (a benchmark's, a test's), since it holds the whole of it."""
        shards = [self.read_shard(shard) for corpus in self.corpora for shard in corpus.shards]
        return tuple(
            Sequences(
                np.concatenate([pair[side].values for pair in shards]),
                np.concatenate([pair[side].lengths for pair in shards]),
            )
            for side in (0, 1)
        )

    def train_lengths(self) -> np.ndarray:
        """The (source, target) lengths of every training pair, (pairs, 2): shard by shard, in the index's order."""
        return np.concatenate([self.shard_lengths(shard) for corpus in self.corpora for shard in corpus.shards])

    def shard_lengths(self, shard: Shard) -> np.ndarray:
        """The (source, target) lengths of a shard's pairs, (pairs, 2), as the batchers take them."""
        path = self.folder / f"{shard.name}.len"
        lengths = np.frombuffer(_read_bytes(path, self.folder), np.int32).reshape(-1, 2)
        if len(lengths) != shard.pairs:
            raise self._damaged(path, f"it has {len(lengths)} pairs, not the index's {shard.pairs}")
        return lengths.astype(np.int64)

    def pairs_over(self, tokens: int) -> int:
        """How many training pairs cost more than `tokens` in a batch (`batchers.pair_tokens`)."""
        histogram = self.index["pair_tokens"]  # pairs of each cost, from 0
        return int(sum(histogram[tokens + 1 :]))

    def _damaged(self, path: Path, problem: str) -> DataError:
        return DataError(
            f"{path}: {problem}; the prepared corpus is damaged: delete {self.folder} and it is prepared again"
        )

    def description(self) -> str:
        """`240 training, 60 validation and 0 test pairs; source: 50 distinct characters, longest 23; ...`"""
        source, target = self.source_vocab, self.target_vocab
        weighted = ""
        if len(self.corpora) > 1:
            total = sum(corpus.weight for corpus in self.corpora)
            shares = ", ".join(f"{Path(corpus.sources[0]).name} {corpus.weight / total:.0%}" for corpus in self.corpora)
            weighted = f" in {len(self.corpora)} corpora sampled as {shares}"
        return (
            f"{self.train_pairs} training{weighted}, {len(self.val_source)} validation and {self.test_count} "
            f"test pairs; source: {len(source.tokens)} distinct {source.unit}s, longest {self.max_source_len}; "
            f"target: {len(target.tokens)} distinct {target.unit}s, longest {self.max_target_len}"
        )

    def summary(self) -> dict:
        """What summary.json records of the data a run trains on (`data_fingerprint` checked on resuming)."""
        from sequencer import __version__

        return {
            "sequencer_version": __version__,
            "train_pairs": self.train_pairs,
            "val_pairs": len(self.val_source),
            "test_pairs": self.test_count,
            "max_source_len": self.max_source_len,
            "max_target_len": self.max_target_len,
            "data_fingerprint": self.fingerprint,
            "prepared": str(self.folder),
        }


def _read_bytes(path: Path, folder: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing; the prepared corpus is damaged: delete {folder} and it is prepared again"
        ) from None


def vocabulary_digest(vocabularies: tuple[Vocabulary, Vocabulary]) -> str:
    """A digest of two vocabularies, for a fingerprint: the same tokens (and SentencePiece models), the same digest."""
    digest = hashlib.sha256(json.dumps([vocab.to_json() for vocab in vocabularies], sort_keys=True).encode())
    for vocab in vocabularies:
        for data in vocab.files().values():
            digest.update(data)
    return digest.hexdigest()
