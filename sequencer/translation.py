"""Translation: sentences in, hypotheses out, with a run's model, vocabularies and search, or an export.

A translator is pure: it reads no files, writes none and keeps no counters; what a caller may
want to report (tokens never seen in training, translations cut at the length limit) comes back
with the hypotheses. `BatchTranslator` is what every translator shares; `Translator` translates
with a run folder, and the exports have theirs (`exports.open_export`). `prediction.Predictor` is
the file and folder front end on top of any of them; the server and evaluate.py use them
directly. The module imports TensorFlow only to decode, so that the server's modules can share
its types before TensorFlow starts, and a CTranslate2 export translates without it.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sequencer.config import Config
from sequencer.data import pad_ids
from sequencer.errors import SequencerError
from sequencer.evaluation import ReferenceSet, score
from sequencer.runs import Run
from sequencer.scoring import PairScore, Scores
from sequencer.vocabulary import END_ID, UNK_ID, Vocabulary

if TYPE_CHECKING:
    from sequencer.scoring import TeacherForcing
    from sequencer.search import Hypotheses

log = logging.getLogger(__name__)

Hypothesis = tuple[str, float]  # a translation and its score, the log-probability divided by the length penalty
# What a translation loses at both ends: ASCII white space, as tf.strings.strip does it in an
# export; other spaces (French's narrow no-break space before "!") are text.
EDGE_SPACE = " \t\n\r\f\v"
# Control characters (tabs, line breaks, NUL...), which a subword model can emit as byte pieces,
# become spaces: a translation is one line, and a tab separates n-best translations and pairs.
CONTROL_TO_SPACE = {code: " " for code in (*range(32), *range(127, 160))}
LEAST_DRAW_SETTING = 1e-6  # the least positive temperature and top_p a decoder is given (`Sampling.drawable`)


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
    """How decoding=sample draws (see `search.SamplingDecoder`)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 1

    @classmethod
    def of(cls, config: Config) -> Sampling:
        return cls(config.temperature, config.top_k, config.top_p, config.seed)

    def drawable(self, vocab_size: int) -> Sampling:
        """These settings as every translator can take them, drawing the same: a positive
        temperature and top_p at least `LEAST_DRAW_SETTING` (smaller ones keep the most probable
        token alone, as these do, but in 32-bit floats overflow the logits or round the nucleus
        to nothing), and top_k at most the vocabulary (beyond it CTranslate2 refuses)."""
        return replace(
            self,
            temperature=self.temperature and max(self.temperature, LEAST_DRAW_SETTING),
            top_k=min(self.top_k, vocab_size),
            top_p=max(self.top_p, LEAST_DRAW_SETTING),
        )


@dataclass(frozen=True)
class Decoding:
    """How one call decodes: by search (greedy or beam), or by drawing `n_best` samples."""

    mode: str  # "search" or "sample"
    beam_width: int
    n_best: int
    sampling: Sampling

    @classmethod
    def of(cls, config: Config) -> Decoding:
        return cls(config.decoding, config.beam_width, config.n_best, Sampling.of(config))


class DecodingError(SequencerError):
    """A way of decoding a translator cannot give, or a prefix it cannot start with."""


class BatchTranslator:
    """What every translator shares: sentences in, `Translations` out, decoded in batches.

    Sentences are read into source tokens (`_read`), sorted by length into batches of
    `decode_batch_size` so that a batch pads little, and decoded batch by batch (`_decode`); an
    empty sentence is not decoded and gives one empty translation of score 0. A translation
    loses its leading and trailing spaces (`EDGE_SPACE`: a character model pads its output with
    spaces as readily as with anything). Subclasses: `Translator` (a run folder's model),
    `savedmodel.SavedModelTranslator` and `ctranslate.CTranslate2Translator` (exports), so that
    `Predictor`, evaluate.py and the server translate with any of them alike.
    """

    name: str  # the run translated with, as the server and the logs name it
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    max_source_len: int | None = None  # source tokens read, the rest dropped (learned positions); None: all
    run_dir: Path | None = None  # the run folder, where evaluations are recorded; None for an export
    fixed_search = False  # whether only its own beam_width and n_best are possible (a SavedModel's)
    can_sample = False  # whether decoding=sample is possible
    can_force = False  # whether it takes target prefixes
    can_score = False  # whether it scores given pairs (`score`)
    default: Decoding  # how it decodes unless a call says otherwise
    length_penalty: float
    max_output_len: int
    min_output_len: int
    decode_batch_size: int

    @property
    def beam_width(self) -> int:
        return self.default.beam_width

    @property
    def n_best(self) -> int:
        return self.default.n_best

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
        told how many sentences each batch did. The other arguments default to the translator's.

        `prefixes` (one per sentence, "" for none) are target text each translation must start
        with: its output starts with exactly their tokens and goes on from them.
        """
        how = self._how(beam_width, n_best, decoding, sampling, prefixes is not None)
        read = [self._read(sentence) for sentence in sentences]
        unknown: Counter[str] = Counter(token for _, _, tokens in read for token in tokens)
        forced = self._prefixes(prefixes, len(sentences), unknown)
        results: list[list[Hypothesis]] = [[("", 0.0)] for _ in sentences]
        at_limit = 0
        by_length = sorted((i for i, (_, length, _) in enumerate(read) if length), key=lambda i: read[i][1])
        for start in range(0, len(by_length), self.decode_batch_size):
            batch = by_length[start : start + self.decode_batch_size]
            found, cut = self._decode([read[i][0] for i in batch], forced and [forced[i] for i in batch], how)
            at_limit += cut
            for i, hypotheses in zip(batch, found):
                prefix = forced and (prefixes[i], forced[i])
                results[i] = keep_finite([(self._shown(text, prefix), score) for text, score in hypotheses])
            if progress:
                progress(len(batch))
        if progress:
            progress(len(sentences) - len(by_length))  # the empty ones
        return Translations(results, unknown, at_limit)

    def _shown(self, text: str, prefix: tuple[str, Any] | None) -> str:
        """A translation as the caller gets it: starting with its prefix as the caller wrote it,
        where decoding its tokens spells it otherwise (unknown tokens, spaces, Unicode forms), one
        line (`CONTROL_TO_SPACE`), without edge spaces. `prefix`: the text and what `_read_target`
        made of it, or None."""
        if prefix and prefix[0]:
            spelled = self._spell(prefix[1])
            if text.startswith(spelled):
                text = prefix[0] + text[len(spelled) :]
        return text.translate(CONTROL_TO_SPACE).strip(EDGE_SPACE)

    def _how(self, beam_width, n_best, decoding, sampling, forced: bool) -> Decoding:
        """How a call decodes: the translator's default, with what the call changes; DecodingError
        for what this translator cannot do."""
        changes = {"beam_width": beam_width, "n_best": n_best, "mode": decoding, "sampling": sampling}
        how = replace(self.default, **{name: value for name, value in changes.items() if value is not None})
        if how.mode == "sample" and not self.can_sample:
            raise DecodingError(
                f"{self.name} cannot sample (decoding=sample): a SavedModel export decodes by search only"
            )
        if forced and not self.can_force:
            raise DecodingError(f"{self.name} cannot start translations with a prefix: a SavedModel export cannot")
        if how.mode == "sample":
            how = replace(how, sampling=how.sampling.drawable(len(self.target_vocab)))
        return how

    def _prefixes(self, prefixes: Sequence[str] | None, count: int, unknown: Counter[str]) -> list[Any] | None:
        """What `_decode` takes for each prefix (`_read_target`); DecodingError for a prefix as
        long as the longest translation, or a count that is not the sentences'."""
        if prefixes is None:
            return None
        if len(prefixes) != count:
            raise DecodingError(f"{len(prefixes)} prefixes for {count} sentences; give one for each (empty for none)")
        read = [self._read_target(prefix) for prefix in prefixes]
        for number, (_, length, tokens) in enumerate(read, start=1):
            if length >= self.max_output_len:
                raise DecodingError(
                    f"prefix {number} has {length} tokens; a translation may have {self.max_output_len} "
                    "(max_output_len), its end marker included"
                )
            unknown.update(tokens)
        return [forced for forced, _, _ in read]

    def source_tokens(self, sentences: Sequence[str]) -> int:
        """How many source tokens `sentences` hold, as the model reads them: what a request costs (serving)."""
        return sum(self._read(sentence)[1] for sentence in sentences)

    def target_tokens(self, texts: Sequence[str]) -> list[int]:
        """How many target tokens each of `texts` holds, as a prefix or a scored target is read
        (what the server bounds). DecodingError if this translator reads no target text."""
        if not (self.can_force or self.can_score):
            raise DecodingError(f"{self.name} reads no target text: a SavedModel export only translates")
        return [self._read_target(text)[1] for text in texts]

    def score(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        """Each (source, target) pair's log-probability under the model (`scoring`), in order.

        Both sides are read as translation reads them: the source cut at `max_source_len`, the
        target at `max_output_len` tokens with its end marker. DecodingError if this translator
        cannot score (a SavedModel export)."""
        if not self.can_score:
            raise DecodingError(f"{self.name} cannot score pairs: a SavedModel export only translates")
        pairs = list(pairs)  # read twice below: an iterator would be spent (CTranslate2 crashes on one)
        sources = [self._read(source) for source, _ in pairs]
        empty = next((number for number, (_, length, _) in enumerate(sources, start=1) if not length), None)
        if empty:
            raise DecodingError(f"pair {empty} has an empty source: there is nothing to score its target against")
        targets = [self._read_target(target, self.max_output_len - 1) for _, target in pairs]
        unknown: Counter[str] = Counter(token for _, _, tokens in sources + targets for token in tokens)
        totals = self._score([ids for ids, _, _ in sources], [ids for ids, _, _ in targets])
        return Scores([PairScore(total, length + 1) for total, (_, length, _) in zip(totals, targets)], unknown)

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
        if self.default.mode == "sample":
            settings = {"decoding": "sample", "n_best": self.n_best, **asdict(self.default.sampling), **settings}
        return settings

    @property
    def source_unit(self) -> str:
        """What a source token is, for warnings: "character", "word" or "subword"."""
        return self.source_vocab.unit

    def _read(self, sentence: str) -> tuple[Any, int, list[str]]:
        """What `_decode` takes for one sentence (here its source ids), its length in source tokens
        (0: empty), and its tokens never seen in training (read as the unknown id)."""
        ids = self.source_vocab.encode(sentence)[: self.max_source_len]
        return ids, len(ids), unknown_tokens(self.source_vocab, sentence, ids)

    def _read_target(self, text: str, limit: int | None = None) -> tuple[Any, int, list[str]]:
        """What `_decode` takes for a prefix and `_score` for a target (its target ids, or tokens),
        at most `limit` of them; its length in target tokens; and its tokens never seen in training."""
        raise NotImplementedError

    def _spell(self, forced: Any) -> str:
        """The text that a prefix read by `_read_target` decodes to."""
        raise NotImplementedError

    def _score(self, sources: list[Any], targets: list[Any]) -> list[float]:
        """The total log-probability of each (source, target), read by `_read` and `_read_target`."""
        raise NotImplementedError

    def _decode(
        self, sources: list[Any], prefixes: list[Any] | None, how: Decoding
    ) -> tuple[list[list[Hypothesis]], int]:
        """The `how.n_best` best (translation, score) of each of `sources` (what `_read` gave, none
        empty; each output starting with its prefix, if any), and how many of them had their best
        translation cut at `max_output_len`."""
        raise NotImplementedError


class Translator(BatchTranslator):
    """Translates with the model and vocabularies of one run folder, by search or by sampling,
    from a prefix or not.

    The Prediction keys of `config` (decoding, beam_width, n_best, the sampling settings,
    decode_batch_size, the output length bounds...) say how; by default, those saved with the
    run. `device` and `threads` must apply before the run's model loads (`devices.configure_device`).
    """

    can_sample = can_force = can_score = True

    def __init__(self, run: Run, config: Config | None = None):
        config = config or run.config
        self.run = run
        self.name, self.run_dir = run.path.name, run.path
        self.source_vocab, self.max_source_len = run.source_vocab, run.model.max_positions
        self.target_vocab = run.target_vocab
        self.decode_batch_size = config.decode_batch_size
        longest_target = int(run.summary.get("max_target_len", 0))
        self.max_output_len, self.min_output_len = run.model.decoding_lengths(config, longest_target)
        self.default = Decoding.of(config)
        self.length_penalty = config.length_penalty
        self._decoders: dict = {}  # by mode and beam width, made when first used
        self._teacher_forcing: TeacherForcing | None = None  # made when first scoring

    def _read_target(self, text: str, limit: int | None = None) -> tuple[np.ndarray, int, list[str]]:
        ids = self.target_vocab.encode(text)[:limit]
        return ids, len(ids), unknown_tokens(self.target_vocab, text, ids)

    def _spell(self, forced: np.ndarray) -> str:
        return self.target_vocab.decode(forced)

    def _score(self, sources: list[np.ndarray], targets: list[np.ndarray]) -> list[float]:
        from sequencer.scoring import TeacherForcing  # TensorFlow, once scoring

        if self._teacher_forcing is None:
            self._teacher_forcing = TeacherForcing(self.run.model, self.decode_batch_size)
        return self._teacher_forcing(sources, targets)

    def _decode(
        self, sources: list[np.ndarray], prefixes: list[np.ndarray] | None, how: Decoding
    ) -> tuple[list[list[Hypothesis]], int]:
        found = self._search(pad_ids(sources), pad_ids(prefixes or [np.zeros(0, np.int32)] * len(sources)), how)
        at_limit = int(np.count_nonzero(~(found.ids[:, 0] == END_ID).any(axis=-1)))
        decode = self.target_vocab.decode
        hypotheses = [
            [(decode(row), float(value)) for row, value in zip(ids, scores)]
            for ids, scores in zip(found.ids, found.scores(self.length_penalty))
        ]
        return hypotheses, at_limit

    def _search(self, source_ids: np.ndarray, prefix_ids: np.ndarray, how: Decoding) -> Hypotheses:
        """The hypotheses for padded source and prefix ids: one decoder per mode and beam width,
        made when first used."""
        from sequencer.search import BeamSearchDecoder, GreedyDecoder, SamplingDecoder  # TensorFlow, once decoding

        key = (how.mode, how.beam_width if how.mode == "search" else 0)
        if key not in self._decoders:
            model, alpha = self.run.model, self.length_penalty
            if how.mode == "sample":
                self._decoders[key] = SamplingDecoder(model, alpha)
            else:
                self._decoders[key] = (
                    GreedyDecoder(model) if how.beam_width == 1 else BeamSearchDecoder(model, how.beam_width, alpha)
                )
        decoder, lengths = self._decoders[key], (self.max_output_len, self.min_output_len)
        if how.mode == "sample":
            return decoder(source_ids, *lengths, prefix_ids, **asdict(how.sampling), samples=how.n_best)
        if how.beam_width == 1:
            return decoder(source_ids, *lengths, prefix_ids)
        return decoder(source_ids, *lengths, how.n_best, prefix_ids)


def unknown_tokens(vocab: Vocabulary, sentence: str, ids: np.ndarray) -> list[str]:
    """The tokens of `sentence` that `vocab` read as the unknown id (`ids`: its encoding)."""
    if not (ids == UNK_ID).any():
        return []
    return [token for token, i in zip(vocab.tokenize(sentence), ids) if i == UNK_ID]


def warn_of_unknown_tokens(unknown: Counter[str], unit: str) -> None:
    """One warning for all the tokens read as unknown (`unit`: the source vocabulary's), those of
    sources, prefixes and scored targets alike."""
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
