"""Text files of pairs and sentences: reading them line by line (plain or gzip), checking them, and
the integer ids they become.

Sentences are kept as integer ids in one flat array per side (`Sequences`), never as one-hot
arrays: memory grows with the number of tokens, not with tokens x vocabulary size. Preparing a
corpus for training (vocabularies, splits, shards) is `preparation`'s; reading it, `corpus`'s.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sequencer.config import CorpusSource, where_to_set
from sequencer.errors import ConfigError, DataError
from sequencer.files import unwritable_reason
from sequencer.vocabulary import END_ID, PAD_ID, START_ID, Vocabulary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sequences:
    """Variable-length id sequences stored flat: sequence i is `values[offsets[i]:offsets[i + 1]]`."""

    values: np.ndarray
    lengths: np.ndarray

    @classmethod
    def encode(cls, texts: list[str], vocabulary: Vocabulary) -> Sequences:
        return cls(*vocabulary.encode_all(texts))

    @cached_property
    def offsets(self) -> np.ndarray:
        """Where each sequence starts in `values`, and where the last ends: (len(self) + 1,)."""
        return np.concatenate([[0], np.cumsum(self.lengths)])

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(np.split(self.values, self.offsets[1:-1]))

    def select(self, indices: np.ndarray) -> Sequences:
        """The sequences at `indices`, in that order."""
        lengths = self.lengths[indices]
        # The position in `values` of every id of the selection: each sequence's start, then 0, 1, 2...
        firsts = np.cumsum(lengths) - lengths  # where each selected sequence starts in the result
        positions = np.repeat(self.offsets[:-1][indices] - firsts, lengths) + np.arange(int(lengths.sum()))
        return Sequences(self.values[positions], lengths)


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


def open_binary(path: Path) -> BinaryIO:
    """A file for reading bytes, decompressed if its name ends in .gz."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text) for each line of a UTF-8 file, without its line ending or a BOM.

    Raises DataError naming the file and line of invalid UTF-8.
    """
    with open_binary(path) as stream:
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


def text_files(folder: Path, patterns: tuple[str, ...] = ("*.txt",)) -> list[Path]:
    """The files of `folder` that match `patterns`, in name order; a folder whose name matches is none."""
    return sorted(path for pattern in patterns for path in folder.glob(pattern) if path.is_file())


def corpus_files(source: CorpusSource) -> list[Path]:
    """The pair files of one `train_dir` entry: a folder's *.txt and *.txt.gz files, or the file itself."""
    path = source.path
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"train_dir {path} does not exist; {where_to_set('train_dir')}")
    files = text_files(path, ("*.txt", "*.txt.gz"))
    if not files:
        raise DataError(f"train_dir {path} has no *.txt or *.txt.gz files; {where_to_set('train_dir')}")
    return files


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


class PairReader:
    """Reads the pairs of pair files one by one, counting the malformed lines it skips.

    Blank lines are skipped silently. A malformed line (no tab, an empty side, invalid UTF-8)
    raises DataError with its file:line, or is skipped and counted when `on_bad_line` is "skip".
    """

    def __init__(self, on_bad_line: str = "error"):
        self.on_bad_line = on_bad_line
        self.skipped = 0
        self.bytes_read = 0

    def pairs(self, path: Path) -> Iterator[tuple[str, str]]:
        """The pairs of `path`, read a block of lines at a time: a block is decoded at once, and
        only a line that is not a pair at first sight goes the slow way, for its file:line."""
        number = 0
        with open_binary(path) as stream:
            while lines := stream.readlines(1 << 20):
                self.bytes_read += sum(map(len, lines))
                try:
                    texts = b"".join(lines).decode("utf-8").split("\n")
                except UnicodeDecodeError:
                    texts = None  # some line is not UTF-8: decode_line says which
                for offset, raw in enumerate(lines):
                    number += 1
                    columns = texts[offset].rstrip("\r").split("\t", 2) if texts and number > 1 else ()
                    if len(columns) >= 2:
                        source, target = columns[0].strip(), columns[1].strip()
                        if source and target:
                            yield source, target
                            continue
                    pair = self._slowly(raw, path, number)
                    if pair:
                        yield pair

    def _slowly(self, raw: bytes, path: Path, number: int) -> tuple[str, str] | None:
        """The pair of one line, None for a blank or skipped one; DataError for a bad line (on_bad_line=error)."""
        try:
            text = decode_line(raw, path, number)
            return parse_pair(text) if text.strip() else None
        except (DataError, ValueError) as error:
            if self.on_bad_line != "skip":
                if isinstance(error, DataError):
                    raise
                raise DataError(f"{path}:{number}: {error}; expected source<TAB>target") from None
            self.skipped += 1
            return None


def directed(pair: tuple[str, str], reverse: bool) -> tuple[str, str]:
    """A pair of a pairs file as a model reads it: (source, target), or with `reverse` (the
    `reverse` key, a model of the other direction) (target, source)."""
    return (pair[1], pair[0]) if reverse else pair


def read_pairs(path: Path, on_bad_line: str = "error", limit: int = 0) -> tuple[list[tuple[str, str]], int]:
    """The pairs of one file (at most `limit` unless it is 0) and how many bad lines were skipped (see `PairReader`)."""
    reader = PairReader(on_bad_line)
    pairs: list[tuple[str, str]] = []
    for pair in reader.pairs(path):
        pairs.append(pair)
        if limit and len(pairs) >= limit:
            break
    return pairs, reader.skipped
