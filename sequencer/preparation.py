"""Preparing a corpus: the pairs of `train_dir` read twice, never held whole, and written as shards of ids.

The first pass counts the pairs and builds the vocabularies: counts of characters or words, or
a SentencePiece model trained on at most `subword_sample` sentences, which SentencePiece draws
from the stream itself. The second pass splits, filters and encodes the pairs a chunk at a time
and appends each chunk's ids to the shards; then each shard is finished (duplicates left out
with `dedup`, checksums taken) and the index is written. Memory holds a chunk and the vocabulary,
never the corpus; time grows with the pairs.

Every choice is a function of the pair and `seed`, not of the order or the number of pairs read
so far, so that a corpus of any size streams through:

- a pair is held out for testing when a hash of its source falls under `test_split` (every
  translation of a source sentence goes the same way, so no test source is trained on), and for
  validation when a hash of the pair falls under `val_split`;
- a training pair goes to the shard its hash chooses, so that every shard is a random sample of
  its corpus, and exact duplicates meet in one shard, where `dedup` finds them.

The folder is written under a temporary name and renamed when its index is written: a
preparation interrupted at any moment leaves nothing a later run would read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing
import os
import signal
import time
import zlib
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from sequencer import __version__, vocabulary
from sequencer.config import KEYS, Config
from sequencer.corpus import FORMAT, INDEX_FILE, TEST_FILE, VALID_SHARD, Corpus, vocabulary_digest
from sequencer.data import PairReader, Sequences, corpus_files, directed, warn_of_skipped_lines
from sequencer.errors import DataError
from sequencer.files import atomic_path, write_json
from sequencer.text import Progress
from sequencer.vocabulary import (
    UNK_ID,
    SubwordVocabulary,
    Vocabulary,
    count_tokens,
    load_vocabularies,
    save_vocabularies,
)

log = logging.getLogger(__name__)

# The SentencePiece model files of subword vocabularies.
JOINT_MODEL, SOURCE_MODEL, TARGET_MODEL = "subwords.model", "source-subwords.model", "target-subwords.model"
CHUNK_PAIRS = 20_000  # pairs encoded and written at a time
PARALLEL_PAIRS = 200_000  # a corpus of this many pairs or more is encoded by worker processes


@dataclass(frozen=True)
class Inputs:
    """What a preparation reads: the files of each corpus, and the settings that shape what it writes."""

    corpora: list[list[Path]]  # the files of each corpus (one corpus, unless train_dir has weights)
    settings: dict  # the Data keys' values
    vocabularies: tuple[Vocabulary, Vocabulary] | None  # given (to encode new data as a run did), or built

    @classmethod
    def of(cls, config: Config, vocabularies: tuple[Vocabulary, Vocabulary] | None = None) -> Inputs:
        files = [corpus_files(source) for source in config.train_dir]
        corpora = files if config.weighted else [[path for group in files for path in group]]
        settings = {key.name: key.format(getattr(config, key.name)) for key in KEYS if key.section == "Data"}
        return cls(corpora, settings, vocabularies)

    def fingerprint(self) -> str:
        """The data's fingerprint, cheap to compute and changed by any change that matters: the
        files' paths, sizes and modification times, and the settings. A run records it, and a
        resumed run must train on data of the same fingerprint."""
        described = {
            "format": FORMAT,
            "corpora": [[(str(path), *_size_and_time(path)) for path in files] for files in self.corpora],
            "settings": self.settings,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]

    def folder_name(self) -> str:
        """The prepared folder's name: the fingerprint, and the given vocabularies' digest if any."""
        given = f"-{vocabulary_digest(self.vocabularies)[:12]}" if self.vocabularies else ""
        return self.fingerprint() + given


def _size_and_time(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def prepared_folder(config: Config, vocabularies: tuple[Vocabulary, Vocabulary] | None = None) -> Path:
    """The folder of `config`'s corpus, prepared now if nothing prepared matches its fingerprint."""
    inputs = Inputs.of(config, vocabularies)
    folder = config.prepared_folder / inputs.folder_name()
    if (folder / INDEX_FILE).is_file():
        log.info("prepared corpus: %s", folder)
        return folder
    preparation = Preparation(config, inputs, inputs.fingerprint())
    vocabularies = preparation.read()  # every line is read here: a bad one stops it before anything is written
    folder.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder, replace=False) as partial:  # another process (a worker) may have come first
        partial.mkdir()
        preparation.write(partial, vocabularies)
    log.info("prepared corpus: %s", folder)
    return folder


@dataclass
class _Counts:
    read: int = 0
    test: int = 0
    too_long: int = 0
    over_ratio: int = 0
    duplicates: int = 0
    unknown: list[int] = field(default_factory=lambda: [0, 0])  # source and target tokens read as unknown
    tokens: int = 0  # source and target tokens encoded (of the pairs not held out for testing)
    per_corpus: list[int] = field(default_factory=list)  # pairs of each corpus not held out for testing


@dataclass(frozen=True)
class _Chunk:
    """Up to CHUNK_PAIRS pairs, as read, with what the splits and shards are decided by."""

    corpora: np.ndarray  # the corpus of each pair
    sources: list[str]
    targets: list[str]
    keys: np.ndarray  # uint64: the crc32 of the source, then the target's; equal pairs, equal keys
    test: np.ndarray  # bool: held out for testing


def mix(keys: np.ndarray, salt: int) -> np.ndarray:
    """Uniform uint64 hashes of `keys` and `salt` (splitmix64's finalizer), for the splits and shards."""
    with np.errstate(over="ignore"):
        x = keys ^ np.uint64(salt)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def under(hashes: np.ndarray, fraction: float) -> np.ndarray:
    """Whether each uint64 hash falls in the first `fraction` of its range."""
    return (hashes >> np.uint64(11)).astype(np.float64) < fraction * 2.0**53


@dataclass(frozen=True)
class _Encoding:
    """How a chunk's pairs are encoded and filtered: what a worker process is given once."""

    vocabularies: tuple[Vocabulary, Vocabulary]
    max_len: int
    max_len_ratio: float
    val_split: float
    valid_salt: int


@dataclass(frozen=True)
class _Encoded:
    """A chunk's pairs encoded: of each part, its corpus (None: the validation pairs), source and target ids, keys."""

    parts: list[tuple[int | None, Sequences, Sequences, np.ndarray]]
    too_long: int
    over_ratio: int
    unknown: tuple[int, int] = (0, 0)  # source and target tokens read as the unknown id
    tokens: int = 0  # source and target tokens encoded


def encode_chunk(chunk: _Chunk, how: _Encoding) -> _Encoded:
    """Encode a chunk's pairs not held out for testing, filter them by length, and split them
    into the validation pairs and each corpus's pairs to train on."""
    rest = np.flatnonzero(~chunk.test)
    if not len(rest):
        return _Encoded([], 0, 0)
    source_vocab, target_vocab = how.vocabularies
    source = Sequences.encode([chunk.sources[i] for i in rest], source_vocab)
    target = Sequences.encode([chunk.targets[i] for i in rest], target_vocab)
    unknown = (int(np.count_nonzero(source.values == UNK_ID)), int(np.count_nonzero(target.values == UNK_ID)))
    longer, shorter = np.maximum(source.lengths, target.lengths), np.minimum(source.lengths, target.lengths)
    too_long = longer > how.max_len if how.max_len else np.zeros(len(rest), bool)
    over_ratio = ~too_long & (longer > how.max_len_ratio * shorter) if how.max_len_ratio else np.zeros(len(rest), bool)
    keep = ~too_long & ~over_ratio
    keys, corpora = chunk.keys[rest], chunk.corpora[rest]
    valid = under(mix(keys, how.valid_salt), how.val_split)
    selections = {None: keep & valid, **{int(c): keep & ~valid & (corpora == c) for c in np.unique(corpora)}}
    parts = []
    for corpus, selection in selections.items():
        indices = np.flatnonzero(selection)
        if len(indices):
            parts.append((corpus, source.select(indices), target.select(indices), keys[indices]))
    tokens = int(source.lengths.sum() + target.lengths.sum())
    return _Encoded(parts, int(too_long.sum()), int(over_ratio.sum()), unknown, tokens)


_worker_encoding: _Encoding | None = None  # a worker process's, from `_start_worker`


def _start_worker(how: _Encoding) -> None:
    """A worker process: one encoding thread (the processes share the cores), no Ctrl-C of its own
    (the preparation it works for stops it)."""
    global _worker_encoding
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    vocabulary.ENCODING_THREADS = 1
    _worker_encoding = how


def _encode_in_worker(chunk: _Chunk) -> _Encoded:
    return encode_chunk(chunk, _worker_encoding)


class Preparation:
    """One preparation of `inputs` (see the module docstring): `read`, the first pass, then `write`."""

    def __init__(self, config: Config, inputs: Inputs, fingerprint: str):
        self.config, self.inputs, self.fingerprint = config, inputs, fingerprint
        self.salts = {name: zlib.crc32(f"{name}:{config.seed}".encode()) for name in ("test", "valid", "shard")}
        self.counts = _Counts(per_corpus=[0] * len(inputs.corpora))
        self.started = time.monotonic()

    def read(self) -> tuple[Vocabulary, Vocabulary]:
        """The first pass: the pairs counted, and the vocabularies built (or the given ones)."""
        if self.inputs.vocabularies:
            with Progress("counting pairs") as progress:
                for _ in self._chunks(progress, count=True):
                    pass
        vocabularies = self.inputs.vocabularies or self._build_vocabularies()
        self._check_counts()
        return vocabularies

    def write(self, folder: Path, vocabularies: tuple[Vocabulary, Vocabulary]) -> None:
        """The second pass: the shards, the test pairs, the vocabularies and the index, into `folder`."""
        save_vocabularies(folder, vocabularies)
        config = self.config
        expected = [round(pairs * (1 - config.val_split)) for pairs in self.counts.per_corpus]  # to train on, about
        writer = _Writer(folder, vocabularies, expected, config.shard_pairs, self.salts["shard"])
        with (
            open(folder / TEST_FILE, "w", encoding="utf-8") as test_file,
            Progress("encoding and writing pairs") as progress,
        ):
            how = _Encoding(vocabularies, config.max_len, config.max_len_ratio, config.val_split, self.salts["valid"])
            self._encode_all(progress, test_file, how, writer)
        index = writer.finish(self.config.dedup)
        self.counts.duplicates = index.pop("duplicates")
        for corpus, files in zip(index["corpora"], self.inputs.corpora):
            corpus["sources"] = [str(path) for path in files]
        self._check_written(index)
        index.update(
            format=FORMAT,
            fingerprint=self.fingerprint,
            sequencer_version=__version__,
            settings=self.inputs.settings,
            test_pairs=self.counts.test,
            left_out={
                "too_long": self.counts.too_long,
                "over_ratio": self.counts.over_ratio,
                "duplicates": self.counts.duplicates,
            },
            unknown_tokens=dict(zip(("source", "target"), self.counts.unknown)),
            seconds=round(time.monotonic() - self.started, 1),
        )
        write_json(folder / INDEX_FILE, index)
        log.info("%s", self.report(index))

    # ---- Reading

    def _chunks(self, progress: Progress, count: bool = False) -> Iterator[_Chunk]:
        """The first `num_samples` pairs, in file order, a chunk at a time; with `count` (the first
        pass), counted, the malformed lines skipped said in a warning, and no keys (the second
        pass's) computed: hashing a side costs as much as reading it."""
        reader = PairReader(self.config.on_bad_line)
        pairs = self._pairs(reader)
        while batch := list(islice(pairs, CHUNK_PAIRS)):
            corpora = np.fromiter((corpus for corpus, _, _ in batch), np.int64, len(batch))
            sources = [source for _, source, _ in batch]
            targets = [target for _, _, target in batch]
            source_crc, target_crc = (
                np.fromiter((zlib.crc32(text.encode()) for text in side), np.uint64, len(batch))
                if not count or (side is sources and self.config.test_split)
                else np.zeros(len(batch), np.uint64)
                for side in (sources, targets)
            )
            test = under(mix(source_crc, self.salts["test"]), self.config.test_split)  # by source: all its pairs
            chunk = _Chunk(corpora, sources, targets, (source_crc << np.uint64(32)) | target_crc, test)
            if count:
                self.counts.read += len(batch)
                self.counts.test += int(test.sum())
                for corpus, pairs_of in enumerate(np.bincount(corpora[~test], minlength=len(self.counts.per_corpus))):
                    self.counts.per_corpus[corpus] += int(pairs_of)
            progress.update(progress.done + len(batch), reader.bytes_read)
            yield chunk
        if count:
            warn_of_skipped_lines(reader.skipped, Path(",".join(str(source.path) for source in self.config.train_dir)))

    def _pairs(self, reader: PairReader) -> Iterator[tuple[int, str, str]]:
        limit, read, reverse = self.config.num_samples, 0, self.config.reverse
        for corpus, files in enumerate(self.inputs.corpora):
            for path in files:
                for pair in reader.pairs(path):
                    if limit and read >= limit:
                        return
                    read += 1
                    yield corpus, *directed(pair, reverse)

    def _build_vocabularies(self) -> tuple[Vocabulary, Vocabulary]:
        """The vocabularies of the pairs not held out for testing, counted while the pairs are."""
        config = self.config
        if config.token_level != "subword":
            counts: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
            with Progress("counting tokens") as progress:
                for chunk in self._chunks(progress, count=True):
                    for i in np.flatnonzero(~chunk.test):
                        count_tokens(counts[0], chunk.sources[i], config.token_level)
                        count_tokens(counts[1], chunk.targets[i], config.token_level)
            return tuple(Vocabulary.from_counts(side, config.token_level, config.max_vocab) for side in counts)
        sides = {JOINT_MODEL: (0, 1)} if config.joint_vocab else {SOURCE_MODEL: (0,), TARGET_MODEL: (1,)}
        models = []
        for number, (file_name, columns) in enumerate(sides.items()):
            with Progress(f"reading sentences for SentencePiece ({file_name})") as progress:
                sentences = self._sentences(columns, progress, count=number == 0)
                models.append(
                    SubwordVocabulary.train(
                        sentences,
                        config.subword_vocab,
                        config.subword_model,
                        file_name,
                        sample=config.subword_sample,
                        seed=config.seed,
                    )
                )
        return (models[0], models[0]) if config.joint_vocab else (models[0], models[1])

    def _sentences(self, columns: tuple[int, ...], progress: Progress, count: bool) -> Iterator[str]:
        """The sentences of the pairs not held out for testing: sources, targets, or both in turn."""
        for chunk in self._chunks(progress, count):
            sides = [(chunk.sources, chunk.targets)[column] for column in columns]
            for i in np.flatnonzero(~chunk.test).tolist():
                for side in sides:
                    yield side[i]

    def _check_counts(self) -> None:
        read, trainable = self.counts.read, sum(self.counts.per_corpus)
        if read < 2:
            where = ",".join(str(source.path) for source in self.config.train_dir)
            taken = (
                f"num_samples={self.config.num_samples} takes"
                if self.config.num_samples and self.config.num_samples == read
                else ""
            )
            raise DataError(f"{taken or f'train_dir {where} holds'} {read} pair(s); training needs at least 2")
        if trainable < 2:
            split = f"test_split={self.config.test_split}"
            raise DataError(f"{split} leaves {trainable} of {read} pair(s) to train on; at least 2 needed")

    # ---- Writing

    def _encode_all(self, progress: Progress, test_file, how: _Encoding, writer: _Writer) -> None:
        """The second pass over the pairs: each chunk's test pairs written as text, the others
        encoded (by worker processes for a large corpus: SentencePiece's encoding is most of the
        work, and holds the interpreter while it runs) and handed to `writer` in order."""
        workers = min(os.cpu_count() or 1, 4) if self.counts.read >= PARALLEL_PAIRS else 0
        pool = (
            ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _start_worker, (how,))
            if workers
            else None
        )
        pending: deque[Future | _Encoded] = deque()
        try:
            for chunk in self._chunks(progress):
                test_file.writelines(f"{chunk.sources[i]}\t{chunk.targets[i]}\n" for i in np.flatnonzero(chunk.test))
                pending.append(pool.submit(_encode_in_worker, chunk) if pool else encode_chunk(chunk, how))
                while len(pending) > 2 * workers:  # a few chunks in flight: memory stays bounded
                    self._write(pending.popleft(), writer)
            while pending:
                self._write(pending.popleft(), writer)
        finally:
            if pool:
                pool.shutdown(cancel_futures=True)

    def _write(self, encoded: Future | _Encoded, writer: _Writer) -> None:
        encoded = encoded.result() if isinstance(encoded, Future) else encoded
        self.counts.too_long += encoded.too_long
        self.counts.over_ratio += encoded.over_ratio
        self.counts.unknown = [before + now for before, now in zip(self.counts.unknown, encoded.unknown)]
        self.counts.tokens += encoded.tokens
        for corpus, source, target, keys in encoded.parts:
            writer.add(corpus, source, target, keys)

    def _check_written(self, index: dict) -> None:
        """DataError (and nothing kept) if the splits and filters left too little to train or validate on."""
        config, read = self.config, self.counts.read
        trained = sum(corpus["pairs"] for corpus in index["corpora"])
        if trained < 2:
            settings = f"val_split={config.val_split}, test_split={config.test_split}, max_len={config.max_len}"
            raise DataError(
                f"{settings} and max_len_ratio={config.max_len_ratio} leave {trained} of {read} pair(s) to train on; "
                "at least 2 needed"
            )
        if config.val_split and not index["valid"]["pairs"]:
            raise DataError(
                f"val_split={config.val_split} drew no validation pair from {read} pairs; "
                "give more pairs, or set val_split=0 (and monitor=loss)"
            )

    def report(self, index: dict) -> str:
        """What was prepared, in a line: pairs, shards, what was left out, the rate."""
        counts = self.counts
        shards = sum(len(corpus["shards"]) for corpus in index["corpora"])
        trained = sum(corpus["pairs"] for corpus in index["corpora"])
        left_out = ", ".join(f"{count} {what}" for what, count in index["left_out"].items() if count)
        rate = counts.read / max(time.monotonic() - self.started, 1e-9)
        return (
            f"prepared {counts.read:,} pairs in {index['seconds']:.1f} s ({rate:,.0f} pairs/s): {trained:,} to train "
            f"on in {shards} shard(s), {index['valid']['pairs']:,} to validate, {counts.test:,} to test"
            + (f"; left out: {left_out}" if left_out else "")
            + self._unknown_report()
        )

    def _unknown_report(self) -> str:
        """The tokens read as unknown, worth a word: with given vocabularies (a run's, to fine-tune
        it), new data may hold many that the run never saw."""
        source, target = self.counts.unknown
        if not (source or target):
            return ""
        share = (source + target) / max(self.counts.tokens, 1)
        given = " to the given vocabularies" if self.inputs.vocabularies else ""
        return f"; {source:,} source and {target:,} target token(s) unknown{given} ({share:.2%} of the tokens)"


class _Writer:
    """Appends encoded pairs to the shards of each corpus and to the validation shard, then finishes them."""

    def __init__(self, folder: Path, vocabularies, corpus_pairs: list[int], shard_pairs: int, salt: int):
        self.folder, self.salt = folder, salt
        largest = max(len(vocab) for vocab in vocabularies)
        self.dtype = np.dtype(np.uint16 if largest <= np.iinfo(np.uint16).max + 1 else np.int32)
        self.shards = [
            [_ShardFile(folder, f"train-{corpus}-{number:05d}", self.dtype) for number in range(count)]
            for corpus, count in enumerate(max(1, math.ceil(pairs / shard_pairs)) for pairs in corpus_pairs)
        ]
        self.valid = _ShardFile(folder, VALID_SHARD, self.dtype)
        self.pair_tokens = np.zeros(1, np.int64)  # training pairs of each cost (batchers.pair_tokens), from 0
        self.longest = [0, 0]

    def add(self, corpus: int | None, source: Sequences, target: Sequences, keys: np.ndarray) -> None:
        """Validation pairs (`corpus` None), or training pairs of `corpus`, each to the shard its key chooses."""
        self.longest = [
            max(self.longest[0], int(source.lengths.max())),
            max(self.longest[1], int(target.lengths.max())),
        ]
        if corpus is None:
            self.valid.append(source, target, keys)
            return
        costs = np.maximum(source.lengths, target.lengths + 1)
        if costs.max() >= len(self.pair_tokens):
            self.pair_tokens = np.pad(self.pair_tokens, (0, int(costs.max()) + 1 - len(self.pair_tokens)))
        self.pair_tokens += np.bincount(costs, minlength=len(self.pair_tokens))
        shards = self.shards[corpus]
        chosen = mix(keys, self.salt) % np.uint64(len(shards))
        for number in np.unique(chosen):
            indices = np.flatnonzero(chosen == number)
            shards[int(number)].append(source.select(indices), target.select(indices), keys[indices])

    def finish(self, dedup: bool) -> dict:
        """Close every shard (its duplicates left out with `dedup`) and return the index's shard records."""
        corpora = []
        duplicates = 0
        for shards in self.shards:
            records = [shard.finish(dedup) for shard in shards]
            duplicates += sum(record.pop("duplicates") for record in records)
            records = [record for record in records if record["pairs"]]
            corpora.append({"pairs": sum(record["pairs"] for record in records), "shards": records})
        valid = self.valid.finish(dedup)
        duplicates += valid.pop("duplicates")
        return {
            "dtype": self.dtype.name,
            "corpora": corpora,
            "valid": valid,
            "max_source_len": self.longest[0],
            "max_target_len": self.longest[1],
            "pair_tokens": self.pair_tokens.tolist(),
            "duplicates": duplicates,
        }


class _ShardFile:
    """One shard being written: its ids appended chunk by chunk, its pairs' keys beside them for `dedup`."""

    def __init__(self, folder: Path, name: str, dtype: np.dtype):
        self.folder, self.name, self.dtype = folder, name, dtype
        self.paths = {part: folder / f"{name}.{part}" for part in ("src", "tgt", "len", "key")}
        # Open from the first chunk to `finish`; an interrupted preparation's folder goes whole.
        self.streams = {part: open(path, "wb") for part, path in self.paths.items()}  # noqa: SIM115

    def append(self, source: Sequences, target: Sequences, keys: np.ndarray) -> None:
        source.values.astype(self.dtype).tofile(self.streams["src"])
        target.values.astype(self.dtype).tofile(self.streams["tgt"])
        np.stack([source.lengths, target.lengths], axis=1).astype(np.int32).tofile(self.streams["len"])
        keys.astype(np.uint64).tofile(self.streams["key"])

    def finish(self, dedup: bool) -> dict:
        for stream in self.streams.values():
            stream.close()
        keys = np.fromfile(self.paths.pop("key"), np.uint64)
        os.unlink(self.folder / f"{self.name}.key")
        lengths = np.fromfile(self.paths["len"], np.int32).reshape(-1, 2)
        duplicates = 0
        if dedup and len(keys):
            first = np.sort(np.unique(keys, return_index=True)[1])
            duplicates = len(keys) - len(first)
            if duplicates:
                lengths = self._keep(first, lengths)
        crc = {part: zlib.crc32(path.read_bytes()) for part, path in self.paths.items()}
        return {
            "name": self.name,
            "pairs": len(lengths),
            "source_tokens": int(lengths[:, 0].sum()),
            "target_tokens": int(lengths[:, 1].sum()),
            "crc32": crc,
            "duplicates": duplicates,
        }

    def _keep(self, indices: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Rewrite the shard with the pairs at `indices` only; their lengths."""
        for column, part in enumerate(("src", "tgt")):
            side = Sequences(np.fromfile(self.paths[part], self.dtype), lengths[:, column].astype(np.int64))
            side.select(indices).values.tofile(self.paths[part])
        lengths = lengths[indices]
        lengths.tofile(self.paths["len"])
        return lengths


class Preprocessor:
    """The training pairs of a config as a `Corpus`, prepared first if nothing prepared matches.

    `load(vocabularies)` encodes the pairs with given vocabularies instead of building them; with
    `init_from` (fine-tuning a trained run on new data) they are that run's, kept exactly.
    """

    def __init__(self, config: Config):
        self.config = config

    def load(self, vocabularies: tuple[Vocabulary, Vocabulary] | None = None) -> Corpus:
        if vocabularies is None and self.config.init_from:
            vocabularies = load_vocabularies(self.config.init_from)
        folder = prepared_folder(self.config, vocabularies)
        weights = [source.weight or 1.0 for source in self.config.train_dir] if self.config.weighted else None
        return Corpus.open(folder, weights)
