"""Prediction: translating sentences, files, folders and streams with a saved run."""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

from sequencer.config import Config
from sequencer.data import decode_line, pad_ids, read_lines, translation_inputs
from sequencer.devices import configure_device
from sequencer.evaluation import EVAL_FILE, ReferenceSet, record, score, scores_table
from sequencer.files import atomic_path
from sequencer.runs import Run, find_run, load_run
from sequencer.search import BeamSearchDecoder, GreedyDecoder, Hypotheses
from sequencer.vocabulary import UNK_ID

log = logging.getLogger(__name__)

# Lines read and translated at a time: large enough to fill many batches, small enough that a
# file of any length is translated in bounded memory.
CHUNK_LINES = 8192


class Progress:
    """Lines done and lines per second, redrawn in place on a terminal at most four times a second."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.started = self.shown = time.monotonic()
        self.lines = 0

    def advance(self, lines: int) -> None:
        self.lines += lines
        now = time.monotonic()
        if now - self.shown >= 0.25:
            self.shown = now
            self._show(now)

    def close(self) -> None:
        self._show(time.monotonic())
        self.stream.write("\n")

    def _show(self, now: float) -> None:
        rate = self.lines / max(now - self.started, 1e-9)
        self.stream.write(f"\r{self.lines:,} lines, {rate:,.0f} lines/s")
        self.stream.flush()


class Predictor:
    """Translates with the model and vocabularies of one run folder.

    The Prediction keys of `config` (beam_width, n_best, decode_batch_size, the output length
    bounds...) say how; by default, those saved with the run. `device` and `threads` must apply
    before the run's model loads: `from_config` applies them; a caller who loads the run itself
    calls `devices.configure_device` first.
    """

    def __init__(self, run: Run, config: Config | None = None):
        config = config or run.config
        self.run = run
        self.decode_batch_size = config.decode_batch_size
        longest_target = int(run.summary.get("max_target_len", 0))
        self.max_output_len, self.min_output_len = run.model.decoding_lengths(config, longest_target)
        self.beam_width = config.beam_width
        self.n_best = config.n_best
        self.length_penalty = config.length_penalty
        self._decoders: dict[int, GreedyDecoder | BeamSearchDecoder] = {}  # by beam width, made when first used
        self.unknown_tokens: Counter[str] = Counter()
        self.sentences = self.empty_translations = 0  # non-empty sentences translated, and those translated as blank
        self.show_progress = False  # a progress line on stderr while translating a file or stream
        self.progress: Progress | None = None

    @classmethod
    def from_config(cls, config: Config) -> Predictor:
        """The predictor for `run`, or for the newest run in `model_dir` if `run` is empty."""
        configure_device(config.device, config.threads)
        run = load_run(find_run(config.model_dir, config.run))
        log.info("translating with %s", run.path)
        return cls(run, config)

    def translate(self, sentences: list[str]) -> list[str]:
        """One translation per sentence, in order; an empty sentence gives an empty translation."""
        return [alternatives[0] for alternatives in self.translate_n_best(sentences)]

    def translate_n_best(self, sentences: list[str]) -> list[list[str]]:
        """The `n_best` best translations of each sentence, best first (one for greedy decoding)."""
        return [[text for text, _ in scored] for scored in self.hypotheses(sentences)]

    def hypotheses(
        self, sentences: list[str], beam_width: int | None = None, n_best: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """(translation, score) of the `n_best` best translations of each sentence, best first.

        `beam_width` and `n_best` default to the config's. The score is the log-probability
        divided by the length penalty; a beam wider than the target vocabulary allows can hold
        hypotheses of probability 0 (score -inf), which are left out. Sentences are sorted by
        length into batches so that a batch pads little; tokens never seen in training are read
        as the unknown id and counted in `unknown_tokens`. An empty sentence gives one empty
        translation of score 0.
        """
        beam_width, n_best = beam_width or self.beam_width, n_best or self.n_best
        vocab, limit = self.run.source_vocab, self.run.model.max_positions  # learned positions: no more tokens
        encoded = [vocab.encode(sentence)[:limit] for sentence in sentences]
        for sentence, ids in zip(sentences, encoded):
            if (ids == UNK_ID).any():
                tokens = vocab.tokenize(sentence)
                self.unknown_tokens.update(token for token, i in zip(tokens, ids) if i == UNK_ID)
        results: list[list[tuple[str, float]]] = [[("", 0.0)] for _ in sentences]
        by_length = sorted((i for i, ids in enumerate(encoded) if len(ids)), key=lambda i: len(encoded[i]))
        for start in range(0, len(by_length), self.decode_batch_size):
            batch = by_length[start : start + self.decode_batch_size]
            found = self._decode(pad_ids([encoded[i] for i in batch]), beam_width, n_best)
            for i, ids, scores in zip(batch, found.ids, found.scores(self.length_penalty)):
                scored = [(self.run.target_vocab.decode(row), float(value)) for row, value in zip(ids, scores)]
                results[i] = scored[:1] + [pair for pair in scored[1:] if np.isfinite(pair[1])]
                self.empty_translations += not results[i][0][0].strip()  # a space is as empty to a reader
            self.sentences += len(batch)
            if self.progress:
                self.progress.advance(len(batch))
        if self.progress:
            self.progress.advance(len(sentences) - len(by_length))
        return results

    def _decode(self, source_ids: np.ndarray, beam_width: int, n_best: int) -> Hypotheses:
        if beam_width not in self._decoders:
            model = self.run.model
            self._decoders[beam_width] = (
                GreedyDecoder(model) if beam_width == 1 else BeamSearchDecoder(model, beam_width, self.length_penalty)
            )
        decoder = self._decoders[beam_width]
        if beam_width == 1:
            return decoder(source_ids, self.max_output_len, self.min_output_len)
        return decoder(source_ids, self.max_output_len, self.min_output_len, n_best)

    def translate_lines(self, lines: Iterable[str]) -> Iterator[str]:
        """Output lines for input lines, chunk by chunk: the n-best translations, tab-separated.

        A line's source is its first tab column, so a training file can be translated as it is.
        """
        lines = iter(lines)
        while chunk := list(islice(lines, CHUNK_LINES)):
            for alternatives in self.translate_n_best([line.split("\t", 1)[0].strip() for line in chunk]):
                yield "\t".join(alternatives)

    def evaluate(self, pairs: list[tuple[str, str]]) -> dict:
        """BLEU, chrF and exact matches of the translations of `pairs`' sources, every target a reference."""
        reference_set = ReferenceSet.from_pairs(pairs)
        return {**score(self.translate(reference_set.sources), reference_set.references), "decoding": self.decoding}

    @property
    def decoding(self) -> dict:
        """The settings translations are decoded with, recorded beside their scores."""
        return {
            "beam_width": self.beam_width,
            "length_penalty": self.length_penalty,
            "max_output_len": self.max_output_len,
            "min_output_len": self.min_output_len,
        }

    def translate_folder(self, input_dir: Path, output_dir: Path) -> list[Path]:
        """Translate every `*.txt` in `input_dir` into the file of the same name in `output_dir`."""
        inputs = translation_inputs(input_dir, output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        written, scored = [], {}
        for path in inputs:
            written.append(output_dir / path.name)
            scores = self.translate_file(path, written[-1])
            log.info("wrote %s", written[-1])
            if scores:
                scored[str(path)] = scores
                record(self.run.path, str(path), scores)
        if scored:
            log.info("scores (also in %s):\n%s", self.run.path / EVAL_FILE, scores_table(scored))
        self.warn_unknown_tokens()
        return written

    def translate_file(self, input_path: Path, output_path: Path) -> dict | None:
        """Write one translation per line of `input_path` to `output_path`, atomically.

        When every non-empty line carries a target column (a file in the training format), the
        translations are also scored against the targets, and the scores returned.
        """
        translations: dict[str, str] = {}  # the best translation of each source, for scoring
        pairs: list[tuple[str, str]] = []
        targeted = True
        lines = (text for _, text in read_lines(input_path))
        with (
            atomic_path(output_path) as temporary,
            open(temporary, "w", encoding="utf-8") as output,
            self._progress(input_path),
        ):
            while chunk := list(islice(lines, CHUNK_LINES)):
                for line, translation in zip(chunk, self.translate_lines(chunk)):
                    output.write(translation + "\n")
                    columns = [column.strip() for column in line.split("\t")]
                    if len(columns) > 1 and columns[0] and columns[1]:
                        pairs.append((columns[0], columns[1]))
                        translations[columns[0]] = translation.split("\t", 1)[0]
                    elif columns[0]:
                        targeted = False
        if not (targeted and pairs):
            return None
        reference_set = ReferenceSet.from_pairs(pairs)
        hypotheses = [translations[source] for source in reference_set.sources]
        return {**score(hypotheses, reference_set.references), "decoding": self.decoding}

    def translate_stream(self, input_stream: BinaryIO, output_stream: TextIO) -> None:
        """Translate standard-input style lines to an output stream, flushing after every chunk."""
        lines = (decode_line(raw, Path("<stdin>"), number) for number, raw in enumerate(input_stream, start=1))
        with self._progress(Path("<stdin>")):
            for count, translation in enumerate(self.translate_lines(lines), start=1):
                output_stream.write(translation + "\n")
                if count % CHUNK_LINES == 0:
                    output_stream.flush()
        output_stream.flush()
        self.warn_unknown_tokens()

    @contextmanager
    def _progress(self, source: Path):
        """The progress line while `source` is translated, and a warning if most of it came out empty."""
        self.progress = Progress(sys.stderr) if self.show_progress else None
        self.sentences = self.empty_translations = 0
        try:
            yield
        finally:
            if self.progress:
                self.progress.close()
            self.progress = None
        if self.empty_translations > self.sentences / 2:
            log.warning(
                "%s: %d of %d sentences were translated as empty or blank lines; the model may need more training",
                source,
                self.empty_translations,
                self.sentences,
            )

    def warn_unknown_tokens(self) -> None:
        """One warning for all the tokens translated as unknown since the last call."""
        if self.unknown_tokens:
            total = sum(self.unknown_tokens.values())
            examples = " ".join(repr(token) for token, _ in self.unknown_tokens.most_common(5))
            unit = self.run.source_vocab.unit
            log.warning("%d %s(s) never seen in training were read as unknown (most common: %s)", total, unit, examples)
            self.unknown_tokens.clear()
