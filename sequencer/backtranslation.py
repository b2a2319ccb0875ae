"""Back-translation (Sennrich et al., 2016): synthetic pairs made from monolingual target-side text.

A model of the other direction (trained with `reverse=true`) translates sentences of the target
language into the source language; each translation and its original make a synthetic pair,
source side synthetic, target side real. Trained on the real pairs and the synthetic ones, the
forward model sees more target text than the real pairs hold. Sampled translations train better
than the search's best ones (Edunov et al., 2018), so the script samples by default, and a tag
before every synthetic source tells the model which sources to trust less (Caswell et al., 2019).

scripts/backtranslate.py drives the three steps; this module holds the two that are not training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from sequencer.config import Config, CorpusSource
from sequencer.data import decode_line, open_binary
from sequencer.errors import DataError
from sequencer.files import atomic_path
from sequencer.text import Progress
from sequencer.translation import BatchTranslator

log = logging.getLogger(__name__)

CHUNK_LINES = 4096  # monolingual lines translated at a time: memory holds a chunk, never the file


@dataclass(frozen=True)
class Synthetic:
    """What `write_synthetic_pairs` wrote."""

    pairs: int  # pairs written
    blank: int  # blank lines passed over
    empty: int  # lines whose translation was empty, left out


def write_synthetic_pairs(translator: BatchTranslator, monolingual: Path, output: Path, tag: str = "") -> Synthetic:
    """Translate every line of `monolingual` with `translator` (a reverse run's, decoding as it was
    made to) and write `tag + translation<TAB>line`, a pair of the training format, to `output`,
    atomically: an interrupted translation leaves no file that a training run would read.

    Blank lines are passed over and translations left empty are left out. DataError with the
    file and line for a line a pair cannot hold (one with a tab, or not UTF-8).
    """
    blank = empty = pairs = 0
    with (
        open_binary(monolingual) as lines,
        atomic_path(output) as partial,
        open(partial, "w", encoding="utf-8") as written,
        Progress("back-translating lines") as progress,
    ):
        chunk: list[str] = []
        for number, raw in enumerate(lines, start=1):
            text = decode_line(raw, monolingual, number)
            if "\t" in text:
                raise DataError(f"{monolingual}:{number}: a tab in a monolingual line; one sentence per line, no tabs")
            if not text.strip():
                blank += 1
                continue
            chunk.append(text)
            if len(chunk) == CHUNK_LINES:
                pairs, empty = _translate_chunk(translator, chunk, tag, written, pairs, empty)
                progress.update(number, lines.tell())
                chunk = []
        pairs, empty = _translate_chunk(translator, chunk, tag, written, pairs, empty)
        if not pairs:  # raised in the block: no empty file is left for a training run to read
            raise DataError(f"{monolingual} gave no synthetic pair: no sentence in it, or every translation empty")
    return Synthetic(pairs, blank, empty)


def _translate_chunk(translator, chunk: list[str], tag: str, written, pairs: int, empty: int) -> tuple[int, int]:
    """Translate and write one chunk of lines; the counts of pairs written and translations left empty."""
    if not chunk:
        return pairs, empty
    for translation, line in zip(translator.translate(chunk).best, chunk):
        if translation:
            written.write(f"{tag}{translation}\t{line}\n")
            pairs += 1
        else:
            empty += 1
    return pairs, empty


def forward_config(config: Config, synthetic: Path, weight: float | None) -> Config:
    """`config` training on its own pairs and the synthetic ones.

    Without `weight` the synthetic pairs join the real ones as one corpus, sampled by their
    numbers; with it, they are a corpus of their own sampled with that weight, the real corpora
    keeping theirs (1 where train_dir gives none).
    """
    real = config.train_dir
    if weight is None and not config.weighted:
        return config.replace(train_dir=(*real, CorpusSource(synthetic)))
    weighted = tuple(CorpusSource(source.path, 1.0 if source.weight is None else source.weight) for source in real)
    return config.replace(train_dir=(*weighted, CorpusSource(synthetic, 1.0 if weight is None else weight)))
