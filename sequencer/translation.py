"""Translation: sentences in, hypotheses out, with a run's model, vocabularies and search.

`Translator` is pure: it reads no files, writes none and keeps no counters; what a caller may
want to report (tokens never seen in training, translations cut at the length limit) comes back
with the hypotheses. `prediction.Predictor` is the file and folder front end on top of it; the
server and evaluate.py use it directly. The module imports TensorFlow only to decode, so that
the server's modules can share its types before TensorFlow starts.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from sequencer.config import Config
from sequencer.data import pad_ids
from sequencer.errors import SequencerError
from sequencer.evaluation import ReferenceSet, score
from sequencer.runs import Run
from sequencer.vocabulary import END_ID, UNK_ID, Vocabulary

if TYPE_CHECKING:
    from sequencer.search import Hypotheses

log = logging.getLogger(__name__)

Hypothesis = tuple[str, float]  # a translation and its score, the log-probability divided by the length penalty
# What a translation loses at both ends: ASCII white space, as tf.strings.strip does it in an
# export; other spaces (French's narrow no-break space before "!") are text.
EDGE_SPACE = " \t\n\r\f\v"


@dataclass(frozen=True)
class Translations:
    """The translations of some sentences, and what is worth telling about them."""

    hypotheses: list[list[Hypothesis]]  # per sentence, the n best, best first
    unknown_tokens: Counter[str]  # source tokens never seen in training, read as the unknown id
    at_length_limit: int  # sentences whose best translation was cut at max_output_len, without its end

    @property
    def best(self) -> list[str]:
        return [alternatives[0][0] for alternatives in self.hypotheses]


def keep_finite(hypotheses: Sequence[Hypothesis]) -> list[Hypothesis]:
    """The best hypothesis, and the others but those of probability 0 (score -inf), which a beam
    wider than the target vocabulary allows can hold."""
    return [*hypotheses[:1], *(pair for pair in hypotheses[1:] if math.isfinite(pair[1]))]


@dataclass(frozen=True)
class Sampling:
    """How decoding=sample draws: see `search.SamplingDecoder`."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 1

    @classmethod
    def of(cls, config: Config) -> Sampling:
        return cls(config.temperature, config.top_k, config.top_p, config.seed)


class Translator:
    """Translates with the model and vocabularies of one run folder.

    The Prediction keys of `config` (decoding, beam_width, n_best, the sampling settings,
    decode_batch_size, the output length bounds...) say how; by default, those saved with the
    run; `translate` may change some of them for one call. `device` and `threads` must apply
    before the run's model loads (`devices.configure_device`).
    """

    def __init__(self, run: Run, config: Config | None = None):
        config = config or run.config
        self.run = run
        self.decode_batch_size = config.decode_batch_size
        longest_target = int(run.summary.get("max_target_len", 0))
        self.max_output_len, self.min_output_len = run.model.decoding_lengths(config, longest_target)
        self.mode = config.decoding
        self.beam_width = config.beam_width
        self.n_best = config.n_best
        self.length_penalty = config.length_penalty
        self.sampling = Sampling.of(config)
        self._decoders: dict = {}  # by mode and beam width, made when first used

    def translate(
        self,
        sentences: Sequence[str],
        beam_width: int | None = None,
        n_best: int | None = None,
        progress: Callable[[int], None] | None = None,
        *,
        prefixes: Sequence[str] | None = None,
        decoding: str | None = None,
        sampling: Sampling | None = None,
    ) -> Translations:
        """The `n_best` best translations of each sentence, best first; `progress`, if given, is
        told how many sentences each batch did. The other arguments default to the config's.

        `prefixes` (one per sentence, "" for none) are target text each translation must start
        with: the output starts with exactly their tokens and goes on from them. A translation
        loses its leading and trailing spaces (`EDGE_SPACE`: a character model pads its output
        with spaces as readily as with anything). Sentences are sorted by length into batches so
        that a batch pads little. An empty sentence gives one empty translation of score 0.
        """
        how = (decoding or self.mode, beam_width or self.beam_width, n_best or self.n_best, sampling or self.sampling)
        vocab, limit = self.run.source_vocab, self.run.model.max_positions  # learned positions: no more tokens
        encoded = [vocab.encode(sentence)[:limit] for sentence in sentences]
        unknown = unknown_tokens(vocab, sentences, encoded)
        forced = self._prefixes(prefixes, len(sentences), unknown)
        results: list[list[Hypothesis]] = [[("", 0.0)] for _ in sentences]
        at_limit = 0
        by_length = sorted((i for i, ids in enumerate(encoded) if len(ids)), key=lambda i: len(encoded[i]))
        for start in range(0, len(by_length), self.decode_batch_size):
            batch = by_length[start : start + self.decode_batch_size]
            found = self._decode(pad_ids([encoded[i] for i in batch]), pad_ids([forced[i] for i in batch]), *how)
            at_limit += int(np.count_nonzero(~(found.ids[:, 0] == END_ID).any(axis=-1)))
            for i, ids, scores in zip(batch, found.ids, found.scores(self.length_penalty)):
                decoded = [
                    (self.run.target_vocab.decode(row).strip(EDGE_SPACE), float(value))
                    for row, value in zip(ids, scores)
                ]
                results[i] = keep_finite(decoded)
            if progress:
                progress(len(batch))
        if progress:
            progress(len(sentences) - len(by_length))  # the empty ones
        return Translations(results, unknown, at_limit)

    def _prefixes(self, prefixes: Sequence[str] | None, count: int, unknown: Counter[str]) -> list[np.ndarray]:
        """The target ids each sentence's translation must start with; ValueError for one as long
        as the longest translation (PrefixError, for a caller to place)."""
        if prefixes is None:
            return [np.zeros(0, np.int32)] * count
        if len(prefixes) != count:
            raise PrefixError(f"{len(prefixes)} prefixes for {count} sentences; give one for each (empty for none)")
        vocab = self.run.target_vocab
        forced = [vocab.encode(prefix) for prefix in prefixes]
        unknown.update(unknown_tokens(vocab, prefixes, forced))
        for number, ids in enumerate(forced):
            if len(ids) >= self.max_output_len:
                raise PrefixError(
                    f"prefix {number + 1} has {len(ids)} tokens; a translation may have {self.max_output_len} "
                    "(max_output_len), its end marker included"
                )
        return forced

    def evaluate(self, pairs: list[tuple[str, str]]) -> tuple[dict, Translations]:
        """BLEU, chrF and exact matches of the translations of `pairs`' sources, every target a
        reference, with how they were decoded; and the translations."""
        reference_set = ReferenceSet.from_pairs(pairs)
        found = self.translate(reference_set.sources)
        return {**score(found.best, reference_set.references), "decoding": self.decoding}, found

    @property
    def decoding(self) -> dict:
        """The settings translations are decoded with, recorded beside their scores."""
        settings = {
            "beam_width": self.beam_width,
            "length_penalty": self.length_penalty,
            "max_output_len": self.max_output_len,
            "min_output_len": self.min_output_len,
        }
        if self.mode == "sample":
            settings = {"decoding": "sample", **asdict(self.sampling), **settings}
        return settings

    def _decode(
        self,
        source_ids: np.ndarray,
        prefix_ids: np.ndarray,
        mode: str,
        beam_width: int,
        n_best: int,
        sampling: Sampling,
    ) -> Hypotheses:
        from sequencer.search import BeamSearchDecoder, GreedyDecoder, SamplingDecoder  # TensorFlow, once decoding

        key = (mode, beam_width if mode == "search" else 0)
        if key not in self._decoders:
            model = self.run.model
            if mode == "sample":
                self._decoders[key] = SamplingDecoder(model, self.length_penalty)
            elif beam_width == 1:
                self._decoders[key] = GreedyDecoder(model)
            else:
                self._decoders[key] = BeamSearchDecoder(model, beam_width, self.length_penalty)
        decoder, lengths = self._decoders[key], (self.max_output_len, self.min_output_len)
        if mode == "sample":
            return decoder(source_ids, *lengths, prefix_ids, **asdict(sampling), samples=n_best)
        if beam_width == 1:
            return decoder(source_ids, *lengths, prefix_ids)
        return decoder(source_ids, *lengths, n_best, prefix_ids)


class PrefixError(SequencerError):
    """A prefix that cannot start a translation: too long, or not one per sentence."""


def unknown_tokens(vocab: Vocabulary, texts: Sequence[str], encoded: Sequence[np.ndarray]) -> Counter[str]:
    """The tokens of `texts` that `vocab` reads as the unknown id (in `encoded`, their ids)."""
    unknown: Counter[str] = Counter()
    for text, ids in zip(texts, encoded):
        if (ids == UNK_ID).any():
            unknown.update(token for token, i in zip(vocab.tokenize(text), ids) if i == UNK_ID)
    return unknown


def warn_of_unknown_tokens(unknown: Counter[str], unit: str) -> None:
    """One warning for all the source tokens translated as unknown (`unit`: the vocabulary's)."""
    if unknown:
        examples = " ".join(repr(token) for token, _ in unknown.most_common(5))
        total = sum(unknown.values())
        log.warning("%d %s(s) never seen in training were read as unknown (most common: %s)", total, unit, examples)


def warn_if_young(run: Run) -> None:
    """A warning for a run that has trained too little to translate: one still inside its warm-up,
    whose learning rate has not yet reached its peak (it translates every sentence alike)."""
    warmup, updates = run.config.warmup_steps, run.summary.get("updates")
    if warmup and updates is not None and updates < warmup:
        log.warning(
            "%s has trained %d updates, still inside its warm-up of warmup_steps=%d: expect poor translations "
            "(train.py --resume %s --epochs N trains it further)",
            run.path,
            updates,
            warmup,
            run.path.name,
        )
