"""Training data: reading pair files, building vocabularies, encoding to integer ids, splitting.

Sentences are kept as integer ids in one flat array per side (`Sequences`), never as one-hot
arrays: memory grows with the number of tokens, not with tokens x vocabulary size.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sequencer.config import Config, where_to_set
from sequencer.errors import ConfigError, DataError
from sequencer.files import unwritable_reason
from sequencer.vocabulary import END_ID, PAD_ID, START_ID, SubwordVocabulary, Vocabulary

log = logging.getLogger(__name__)

# The SentencePiece model files of subword vocabularies, in the run folder.
JOINT_MODEL, SOURCE_MODEL, TARGET_MODEL = "subwords.model", "source-subwords.model", "target-subwords.model"


@dataclass(frozen=True)
class Sequences:
    """Variable-length id sequences stored flat: sequence i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray
    lengths: np.ndarray

    @classmethod
    def encode(cls, texts: list[str], vocabulary: Vocabulary) -> Sequences:
        return cls(*vocabulary.encode_all(texts))

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)])

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(np.split(self.values, self.offsets[1:-1]))

    def select(self, indices: np.ndarray) -> Sequences:
        """The sequences at `indices`, in that order."""
        offsets = self.offsets
        lengths = self.lengths[indices]
        if len(indices) == 0:
            return Sequences(self.values[:0], lengths)
        values = np.concatenate([self.values[offsets[i] : offsets[i + 1]] for i in indices])
        return Sequences(values, lengths)


@dataclass(frozen=True)
class Corpus:
    """Encoded training and validation pairs with the vocabularies that encode them, and the test pairs as text."""

    source_vocab: Vocabulary
    target_vocab: Vocabulary
    train_source: Sequences
    train_target: Sequences
    val_source: Sequences
    val_target: Sequences
    test_pairs: list[tuple[str, str]] = field(default_factory=list)
    fingerprint: str = ""  # of the pairs read, before splitting: a resumed run checks it trains on the same data

    @property
    def max_source_len(self) -> int:
        return int(max(self.train_source.lengths.max(initial=0), self.val_source.lengths.max(initial=0)))

    @property
    def max_target_len(self) -> int:
        return int(max(self.train_target.lengths.max(initial=0), self.val_target.lengths.max(initial=0)))

    def summary(self) -> dict:
        """What summary.json records of the data a run trains on (`fingerprint` checked on resuming)."""
        from sequencer import __version__

        return {
            "sequencer_version": __version__,
            "train_pairs": len(self.train_source),
            "val_pairs": len(self.val_source),
            "test_pairs": len(self.test_pairs),
            "max_source_len": self.max_source_len,
            "max_target_len": self.max_target_len,
            "data_fingerprint": self.fingerprint,
        }

    def description(self) -> str:
        """`240 training, 60 validation and 0 test pairs; source: 50 distinct characters, longest 23; ...`"""
        source, target = self.source_vocab, self.target_vocab
        return (
            f"{len(self.train_source)} training, {len(self.val_source)} validation and {len(self.test_pairs)} "
            f"test pairs; source: {len(source.tokens)} distinct {source.unit}s, longest {self.max_source_len}; "
            f"target: {len(target.tokens)} distinct {target.unit}s, longest {self.max_target_len}"
        )


def pad_ids(sequences: list[np.ndarray]) -> np.ndarray:
    """A (len(sequences), longest) int32 matrix of the id sequences, right-padded with PAD_ID."""
    matrix = np.full((len(sequences), max(map(len, sequences), default=1)), PAD_ID, np.int32)
    for row, ids in enumerate(sequences):
        matrix[row, : len(ids)] = ids
    return matrix


def teacher_forcing(target: Sequences) -> tuple[Sequences, Sequences]:
    """Decoder inputs `<s> y1 ... yn` and decoder targets `y1 ... yn </s>` of every target sentence."""
    offsets = target.offsets
    decoder_input = np.insert(target.values, offsets[:-1], START_ID)
    decoder_target = np.insert(target.values, offsets[1:], END_ID)
    return Sequences(decoder_input, target.lengths + 1), Sequences(decoder_target, target.lengths + 1)


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each line of a UTF-8 file, without its line ending or a BOM.

    Raises DataError naming the file and line of invalid UTF-8.
    """
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            yield number, decode_line(raw, path, number)


def decode_line(raw: bytes, path: Path, number: int) -> str:
    """One line's text; DataError with file:line if it is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}:{number}: not valid UTF-8 (byte {error.start + 1} of the line)") from None
    if number == 1:
        text = text.removeprefix("\ufeff")
    return text.rstrip("\r\n")


def text_files(folder: Path) -> list[Path]:
    """The `*.txt` files in `folder`, in name order; a folder whose name ends in .txt is none."""
    return sorted(path for path in folder.glob("*.txt") if path.is_file())


def translation_inputs(input_dir: Path, output_dir: Path) -> list[Path]:
    """The `*.txt` files of `input_dir` to translate into `output_dir`, checked before anything is translated:
    every file is UTF-8 (DataError with file:line), and `output_dir` is not `input_dir` and can be written."""
    if not input_dir.is_dir():
        raise DataError(f"predict_in {input_dir} is not a folder; {where_to_set('predict_in')}")
    if output_dir.resolve() == input_dir.resolve():
        raise ConfigError(
            f"predict_out is the same folder as predict_in ({input_dir}); translations would overwrite the inputs"
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise ConfigError(f"predict_out {output_dir} is not a folder; {where_to_set('predict_out')}")
    reason = unwritable_reason(output_dir)
    if reason:
        raise ConfigError(f"predict_out {output_dir}: {reason}")
    inputs = text_files(input_dir)
    if not inputs:
        raise DataError(f"predict_in {input_dir} has no *.txt files to translate; {where_to_set('predict_in')}")
    for path in inputs:  # every file read once before any is translated: a bad line stops them all
        for _ in read_lines(path):
            pass
    return inputs


def parse_pair(text: str) -> tuple[str, str]:
    """The source and target of one `source<TAB>target[<TAB>more columns]` line.

    Raises ValueError saying what is wrong with the line.
    """
    columns = text.split("\t")
    if len(columns) < 2:
        raise ValueError("no tab between source and target")
    source, target = columns[0].strip(), columns[1].strip()
    if not source:
        raise ValueError("the source side is empty")
    if not target:
        raise ValueError("the target side is empty")
    return source, target


def warn_of_skipped_lines(skipped: int, where: Path) -> None:
    """The warning that `skipped` malformed lines of a file or folder were left out (on_bad_line=skip)."""
    if skipped:
        log.warning("skipped %d malformed line%s in %s (on_bad_line=skip)", skipped, "s"[: skipped != 1], where)


def read_pairs(path: Path, on_bad_line: str = "error", limit: int = 0) -> tuple[list[tuple[str, str]], int]:
    """The pairs of one training file (at most `limit` unless it is 0) and how many bad lines were skipped.

    Blank lines are skipped silently. A malformed line (no tab, an empty side, invalid UTF-8)
    raises DataError with its file:line, or is skipped and counted when `on_bad_line` is "skip".
    """
    pairs: list[tuple[str, str]] = []
    skipped = 0
    with open(path, "rb") as stream:
        for number, raw in enumerate(stream, start=1):
            if limit and len(pairs) >= limit:
                break
            try:
                text = decode_line(raw, path, number)
                if not text.strip():
                    continue
                pairs.append(parse_pair(text))
            except (DataError, ValueError) as error:
                if on_bad_line != "skip":
                    if isinstance(error, DataError):
                        raise
                    raise DataError(f"{path}:{number}: {error}; expected source<TAB>target") from None
                skipped += 1
    return pairs, skipped


def split_by_source(
    pairs: list[tuple[str, str]], fraction: float, rng: np.random.Generator
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(held out, rest): all the pairs of randomly drawn source sentences, about `fraction` of the
    pairs, and the others. No source sentence is on both sides; both keep file order."""
    if not fraction:
        return [], pairs
    lines_of: dict[str, list[int]] = {}
    for index, (source, _) in enumerate(pairs):
        lines_of.setdefault(source, []).append(index)
    groups = list(lines_of.values())
    held_out: set[int] = set()
    for group in rng.permutation(len(groups)):
        if len(held_out) >= fraction * len(pairs):
            break
        held_out.update(groups[group])
    return [pairs[i] for i in sorted(held_out)], [pair for i, pair in enumerate(pairs) if i not in held_out]


class Preprocessor:
    """Reads the training files named by the config into an encoded, split `Corpus`."""

    def __init__(self, config: Config):
        self.config = config

    def read(self) -> list[tuple[str, str]]:
        """The first `num_samples` pairs (all if 0) of the `*.txt` files in `train_dir`, in name order."""
        train_dir = self.config.train_dir
        if not train_dir.is_dir():
            raise DataError(f"train_dir {train_dir} is not a folder; {where_to_set('train_dir')}")
        files = text_files(train_dir)
        if not files:
            raise DataError(f"train_dir {train_dir} has no *.txt files; {where_to_set('train_dir')}")
        limit = self.config.num_samples
        pairs: list[tuple[str, str]] = []
        skipped = 0
        for path in files:
            if limit and len(pairs) >= limit:
                break
            file_pairs, file_skipped = read_pairs(path, self.config.on_bad_line, limit - len(pairs) if limit else 0)
            pairs += file_pairs
            skipped += file_skipped
        warn_of_skipped_lines(skipped, train_dir)
        if len(pairs) < 2:
            taken = f"num_samples={limit} takes" if limit and len(pairs) == limit else f"train_dir {train_dir} holds"
            raise DataError(f"{taken} {len(pairs)} pair(s); training needs at least 2")
        return pairs

    def build(self, pairs: list[tuple[str, str]], vocabularies: tuple[Vocabulary, Vocabulary] | None = None) -> Corpus:
        """A test split by source sentence, vocabularies over the other pairs, their ids, and a validation split.

        Both splits are drawn with `seed`. The test pairs stay text: they are for translating and
        scoring, and tokens only they contain are unknown to the model, as in real use. Given
        `vocabularies` (a resumed run's) are used as they are instead of being built.
        """
        fingerprint = hashlib.sha256("".join(f"{source}\t{target}\n" for source, target in pairs).encode()).hexdigest()
        test_pairs, pairs = split_by_source(pairs, self.config.test_split, np.random.default_rng([self.config.seed, 1]))
        if len(pairs) < 2:
            raise DataError(
                f"test_split={self.config.test_split} leaves {len(pairs)} pair(s) to train on; at least 2 needed"
            )
        sources = [source for source, _ in pairs]
        targets = [target for _, target in pairs]
        source_vocab, target_vocab = vocabularies or self.vocabularies(sources, targets)
        source_ids, target_ids = Sequences.encode(sources, source_vocab), Sequences.encode(targets, target_vocab)

        order = np.random.default_rng(self.config.seed).permutation(len(pairs))
        val_count = int(len(pairs) * self.config.val_split)
        if self.config.val_split and not val_count:
            val_count = 1  # a tiny corpus still validates on something when asked to
        val_indices, train_indices = np.sort(order[:val_count]), np.sort(order[val_count:])
        corpus = Corpus(
            source_vocab,
            target_vocab,
            source_ids.select(train_indices),
            target_ids.select(train_indices),
            source_ids.select(val_indices),
            target_ids.select(val_indices),
            test_pairs,
            fingerprint,
        )
        return corpus

    def vocabularies(self, sources: list[str], targets: list[str]) -> tuple[Vocabulary, Vocabulary]:
        """The source and target vocabularies of `token_level`: one shared SentencePiece model for
        subwords with `joint_vocab`, else one per side."""
        config = self.config
        if config.token_level != "subword":
            return (
                Vocabulary.build(sources, config.token_level, config.max_vocab),
                Vocabulary.build(targets, config.token_level, config.max_vocab),
            )
        if config.joint_vocab:
            joint = SubwordVocabulary.train(sources + targets, config.subword_vocab, config.subword_model, JOINT_MODEL)
            return joint, joint
        return (
            SubwordVocabulary.train(sources, config.subword_vocab, config.subword_model, SOURCE_MODEL),
            SubwordVocabulary.train(targets, config.subword_vocab, config.subword_model, TARGET_MODEL),
        )

    def load(self, vocabularies: tuple[Vocabulary, Vocabulary] | None = None) -> Corpus:
        return self.build(self.read(), vocabularies)
