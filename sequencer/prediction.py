"""Prediction: translating files, folders and streams with a saved run, for people (see `Predictor`)."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import BinaryIO, TextIO

from sequencer.config import Config
from sequencer.data import decode_line, read_lines, translation_inputs
from sequencer.devices import configure_device
from sequencer.errors import DataError
from sequencer.evaluation import EVAL_FILE, ReferenceSet, record, score, scores_table
from sequencer.exports import open_export
from sequencer.files import atomic_path
from sequencer.runs import Run, find_trained_run, load_run
from sequencer.text import Progress
from sequencer.translation import BatchTranslator, Hypothesis, Translator, warn_if_young, warn_of_unknown_tokens

log = logging.getLogger(__name__)

# Lines read and translated at a time: large enough to fill many batches, small enough that a
# file of any length is translated in bounded memory.
CHUNK_LINES = 8192


class Predictor:
    """Translates sentences, files, folders and streams with one run folder or export, through a translator.

    This is the front end for people: it reads and writes files atomically, shows progress, and
    warns once per file or stream of what the translator reports (tokens never seen in training,
    translations mostly empty or cut at the length limit), keeping the counts it needs for that.
    `Predictor(run, config)` translates with a run's model (a `Translator` with `config`'s
    Prediction keys, by default the run's); `Predictor(translator)` with any translator, such as
    an export's (`from_export`).
    """

    def __init__(self, source: Run | BatchTranslator, config: Config | None = None):
        self.translator = source if isinstance(source, BatchTranslator) else Translator(source, config)
        self.run = getattr(self.translator, "run", None)  # None for an export
        self.unknown_tokens: Counter[str] = Counter()
        # Since the file or stream began: non-empty sentences translated, and those translated as
        # blank or cut at the length limit.
        self.sentences = self.empty_translations = self.at_length_limit = 0
        self.show_progress = False  # a progress line on stderr while translating a file or stream
        self.progress: Progress | None = None

    @classmethod
    def from_config(cls, config: Config) -> Predictor:
        """The predictor for `run`, or for the newest trained run in `model_dir` if `run` is empty."""
        configure_device(config.device, config.threads)
        run = load_run(find_trained_run(config.model_dir, config.run))
        log.info("translating with %s", run.path)
        warn_if_young(run)
        return cls(run, config)

    @classmethod
    def from_export(cls, folder: Path, config: Config) -> Predictor:
        """The predictor for an export folder of either format (`exports.open_export`)."""
        translator = open_export(folder, config)
        log.info("translating with the export %s", folder)
        return cls(translator)

    def translate(self, sentences: list[str], prefixes: list[str] | None = None) -> list[str]:
        """One translation per sentence, in order; an empty sentence gives an empty translation."""
        return [alternatives[0] for alternatives in self.translate_n_best(sentences, prefixes)]

    def translate_n_best(self, sentences: list[str], prefixes: list[str] | None = None) -> list[list[str]]:
        """The `n_best` best translations of each sentence, best first (one for greedy decoding)."""
        return [[text for text, _ in scored] for scored in self.hypotheses(sentences, prefixes)]

    def hypotheses(self, sentences: list[str], prefixes: list[str] | None = None) -> list[list[Hypothesis]]:
        """(translation, score) of the `n_best` best translations of each sentence, best first,
        each starting with its prefix if `prefixes` are given (see `BatchTranslator.translate`),
        counted for the warnings at the end of a file."""
        advance = self.progress and self.progress.advance
        found = self.translator.translate(sentences, progress=advance, prefixes=prefixes)
        self.unknown_tokens.update(found.unknown_tokens)
        self.sentences += sum(1 for sentence in sentences if sentence)
        self.empty_translations += sum(1 for sentence, text in zip(sentences, found.best) if sentence and not text)
        self.at_length_limit += found.at_length_limit
        return found.hypotheses

    def evaluate(self, pairs: list[tuple[str, str]]) -> dict:
        """BLEU, chrF and exact matches of the translations of `pairs`' sources, every target a reference."""
        scores, found = self.translator.evaluate(pairs)
        self.unknown_tokens.update(found.unknown_tokens)
        return scores

    def translate_lines(self, lines: Iterable[str], prefixes: Iterable[str] | None = None) -> Iterator[str]:
        """Output lines for input lines, chunk by chunk: the n-best translations, tab-separated.

        A line's source is its first tab column, so a training file can be translated as it is.
        `prefixes`, if given, are one per line (`PrefixLines`): what its translations start with.
        """
        lines, prefixes = iter(lines), prefixes and iter(prefixes)
        while chunk := list(islice(lines, CHUNK_LINES)):
            sources = [line.split("\t", 1)[0].strip() for line in chunk]
            for alternatives in self.translate_n_best(sources, prefixes and list(islice(prefixes, len(chunk)))):
                yield "\t".join(alternatives)

    def translate_folder(self, input_dir: Path, output_dir: Path, prefix_path: Path | None = None) -> list[Path]:
        """Translate every `*.txt` in `input_dir` into the file of the same name in `output_dir`.

        `prefix_path` (predict.py's `--prefix`) is a file of prefixes when `input_dir` holds one
        input, or a folder holding a prefix file named as each input that has prefixes."""
        inputs = translation_inputs(input_dir, output_dir)
        prefix_files = prefix_files_for(inputs, prefix_path)
        output_dir.mkdir(parents=True, exist_ok=True)
        written, scored = [], {}
        for path in inputs:
            written.append(output_dir / path.name)
            scores = self.translate_file(path, written[-1], prefix_files.get(path))
            log.info("wrote %s", written[-1])
            if scores:
                scored[str(path)] = scores
                if self.translator.run_dir:  # an export has no run folder to record them in
                    record(self.translator.run_dir, str(path), scores)
        if scored:
            where = f" (also in {self.translator.run_dir / EVAL_FILE})" if self.translator.run_dir else ""
            log.info("scores%s:\n%s", where, scores_table(scored))
        self.warn_unknown_tokens()
        return written

    def translate_file(self, input_path: Path, output_path: Path, prefix_path: Path | None = None) -> dict | None:
        """Write one translation per line of `input_path` to `output_path`, atomically; each
        starting with the line of the same number in `prefix_path`, if given.

        When every non-empty line carries a target column (a file in the training format), the
        translations are also scored against the targets, and the scores returned.
        """
        translations: dict[str, str] = {}  # the best translation of each source, for scoring
        pairs: list[tuple[str, str]] = []
        targeted = True
        lines = (text for _, text in read_lines(input_path))
        prefixes = prefix_path and PrefixLines(prefix_path, input_path)
        with (
            atomic_path(output_path) as temporary,
            open(temporary, "w", encoding="utf-8") as output,
            self._progress(input_path),
        ):
            while chunk := list(islice(lines, CHUNK_LINES)):
                for line, translation in zip(chunk, self.translate_lines(chunk, prefixes)):
                    output.write(translation + "\n")
                    columns = [column.strip() for column in line.split("\t")]
                    if len(columns) > 1 and columns[0] and columns[1]:
                        pairs.append((columns[0], columns[1]))
                        translations[columns[0]] = translation.split("\t", 1)[0]
                    elif columns[0]:
                        targeted = False
            if prefixes:
                prefixes.check_ended()
        if not (targeted and pairs):
            return None
        reference_set = ReferenceSet.from_pairs(pairs)
        hypotheses = [translations[source] for source in reference_set.sources]
        return {**score(hypotheses, reference_set.references), "decoding": self.translator.decoding}

    def translate_stream(self, input_stream: BinaryIO, output_stream: TextIO, prefix_path: Path | None = None) -> None:
        """Translate standard-input style lines to an output stream, flushing after every chunk;
        each translation starting with the line of the same number in `prefix_path`, if given."""
        lines = (decode_line(raw, Path("<stdin>"), number) for number, raw in enumerate(input_stream, start=1))
        prefixes = prefix_path and PrefixLines(prefix_path, Path("<stdin>"))
        with self._progress(Path("<stdin>")):
            for count, translation in enumerate(self.translate_lines(lines, prefixes), start=1):
                output_stream.write(translation + "\n")
                if count % CHUNK_LINES == 0:
                    output_stream.flush()
            if prefixes:
                prefixes.check_ended()
        output_stream.flush()
        self.warn_unknown_tokens()

    @contextmanager
    def _progress(self, source: Path):
        """The progress line while `source` is translated, and a warning if most of it came out
        empty, or cut at the length limit (a young model repeats itself until it is stopped)."""
        self.progress = Progress(unit="lines", live=True, stream=sys.stderr) if self.show_progress else None
        self.sentences = self.empty_translations = self.at_length_limit = 0
        try:
            yield
        finally:
            if self.progress:
                self.progress.close()
            self.progress = None
        for count, what in (
            (self.empty_translations, "translated as empty or blank lines"),
            (self.at_length_limit, f"cut at the length limit of {self.translator.max_output_len} tokens"),
        ):
            if count > self.sentences / 2:
                log.warning(
                    "%s: %d of %d sentences were %s; the model may need more training",
                    source,
                    count,
                    self.sentences,
                    what,
                )

    def warn_unknown_tokens(self) -> None:
        """One warning for all the tokens translated as unknown since the last call."""
        warn_of_unknown_tokens(self.unknown_tokens, self.translator.source_unit)
        self.unknown_tokens.clear()


class PrefixLines:
    """The lines of a prefix file, one per line of the input it is aligned with: what each
    translation starts with (empty: nothing). DataError if the file ends before the input does,
    or (`check_ended`, once the input has ended) has lines left over."""

    def __init__(self, path: Path, input_name: Path):
        self.path, self.input_name = path, input_name
        self._lines = read_lines(path)
        self._read = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        try:
            number, text = next(self._lines)
        except StopIteration:
            raise DataError(
                f"{self.path} has {self._read} line(s), fewer than {self.input_name}: give one prefix per input "
                "line (an empty line for none)"
            ) from None
        self._read = number
        return text

    def check_ended(self) -> None:
        if next(self._lines, None) is not None:
            raise DataError(
                f"{self.path} has more lines than the {self._read} of {self.input_name}: give one prefix per "
                "input line (an empty line for none)"
            )


def prefix_files_for(inputs: list[Path], prefix_path: Path | None) -> dict[Path, Path]:
    """The prefix file of each input file that has one: `prefix_path` itself for a single input,
    or the file of the input's name in the folder `prefix_path`. DataError for a missing path, or
    a single prefix file for several inputs."""
    if prefix_path is None:
        return {}
    if prefix_path.is_dir():
        found = {path: prefix_path / path.name for path in inputs if (prefix_path / path.name).is_file()}
        if not found:
            raise DataError(f"--prefix {prefix_path} holds no file named as an input file; name each prefix file so")
        return found
    if not prefix_path.is_file():
        raise DataError(f"prefix file {prefix_path} (--prefix) does not exist")
    if len(inputs) > 1:
        raise DataError(
            f"--prefix {prefix_path} is one file for {len(inputs)} input files; give a folder holding a prefix "
            "file named as each input instead"
        )
    return {inputs[0]: prefix_path}
