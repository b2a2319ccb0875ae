"""What the server translates with: any translator (a run's model, or an export of `scripts/export.py`), made thin.

A backend translates a list of sentences by search (a beam width and an n-best count) or by
sampling (n_best samples), from target prefixes or not; scores given pairs; says which decoding
a request may ask for and what it can do at all; and counts a request's source and target
tokens (its cost, which `max_request_tokens` bounds, and a prefix's length). `TranslatorBackend`
wraps a translator of `translation`: a run's or a CTranslate2 export's decodes with any beam
width up to `max_beam_width`, samples, takes prefixes and scores; a SavedModel export's
translates only, by search with the beam width and n-best fixed in it when it was made.

TensorFlow (or CTranslate2) is imported only when a backend is loaded, so that the script checks
its settings first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sequencer.config import Config
from sequencer.errors import ConfigError
from sequencer.scoring import PairScore
from sequencer.translation import Decoding, Hypothesis, Sampling

if TYPE_CHECKING:
    from sequencer.translation import BatchTranslator

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the server translates with: a model, its name, its defaults, and what a request may ask of it."""

    name: str  # the run's name, sent with every answer
    default: Decoding  # how a request that names nothing decodes; the defaults of its sampling fields
    max_output_len: int  # target tokens a translation may hold, its end marker included
    can_sample: bool  # decoding=sample
    can_force: bool  # prefixes
    can_score: bool  # POST /score

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        """The values `field` may take, and how to say so: beam_width; n_best with that beam width;
        or samples, the n_best of decoding=sample."""
        ...

    def source_tokens(self, sentences: list[str]) -> int:
        """How many source tokens the model reads in `sentences`."""
        ...

    def target_tokens(self, texts: list[str]) -> list[int]:
        """How many target tokens the model reads in each of `texts` (prefixes, or targets to score)."""
        ...

    def translate(
        self,
        sentences: list[str],
        beam_width: int,
        n_best: int,
        *,
        prefixes: list[str] | None = None,
        sampling: Sampling | None = None,
    ) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each non-empty sentence, best first: by search with
        `beam_width`, or, given `sampling`, `n_best` samples drawn so; each starting with its
        prefix ("" for none), if any."""
        ...

    def score(self, pairs: list[tuple[str, str]]) -> list[PairScore]:
        """Each (source, target) pair's log-probability under the model, in order."""
        ...


class TranslatorBackend:
    """A translator for the server. It keeps no counts (the translator reports, the server drops
    what it does not answer), so a long-running server accumulates nothing; a run's translator
    makes one decoder per beam width (and one for sampling) when it is first asked for, and keeps it."""

    def __init__(self, translator: BatchTranslator, max_beam_width: int):
        self.translator = translator
        self.name, self.default = translator.name, translator.default
        self.max_output_len = translator.max_output_len
        self.can_sample = translator.can_sample
        self.can_force = translator.can_force
        self.can_score = translator.can_score
        self.max_beam_width = max_beam_width

    @classmethod
    def load(cls, config: Config, run_dir: Path | None = None, export_dir: Path | None = None) -> TranslatorBackend:
        """The backend of a run folder (`config`'s Prediction keys) or of an export folder."""
        if export_dir:
            from sequencer.exports import open_export

            translator = open_export(export_dir, config)
            log.info("translating with the export %s", export_dir)
        else:
            from sequencer.devices import configure_device
            from sequencer.runs import load_run
            from sequencer.translation import Translator, warn_if_young

            configure_device(config.device, config.threads)
            run = load_run(run_dir)
            log.info("translating with %s", run.path)
            warn_if_young(run)
            translator = Translator(run, config)
        return cls(translator, config.max_beam_width)

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        widest = f"{self.max_beam_width} (max_beam_width)"
        if field == "samples":
            return range(1, self.max_beam_width + 1), f"an integer from 1 to {widest} with decoding=sample"
        if self.translator.fixed_search:
            value = self.default.beam_width if field == "beam_width" else self.default.n_best
            fixed = f"beam_width={self.default.beam_width} and n_best={self.default.n_best}"
            return range(value, value + 1), f"{value} (this export decodes with {fixed} only)"
        if field == "beam_width":
            return range(1, self.max_beam_width + 1), f"an integer from 1 to {widest}"
        return range(1, beam_width + 1), f"an integer from 1 to the beam width, {beam_width}"

    def source_tokens(self, sentences: list[str]) -> int:
        return self.translator.source_tokens(sentences)

    def target_tokens(self, texts: list[str]) -> list[int]:
        return self.translator.target_tokens(texts)

    def translate(
        self,
        sentences: list[str],
        beam_width: int,
        n_best: int,
        *,
        prefixes: list[str] | None = None,
        sampling: Sampling | None = None,
    ) -> list[list[Hypothesis]]:
        how = {"decoding": "sample", "sampling": sampling} if sampling else {"decoding": "search"}
        return self.translator.translate(sentences, beam_width, n_best, prefixes=prefixes, **how).hypotheses

    def score(self, pairs: list[tuple[str, str]]) -> list[PairScore]:
        return self.translator.score(pairs).pairs


def check_settings(config: Config) -> None:
    """ConfigError for Serving settings that contradict the Prediction ones."""
    if config.beam_width > config.max_beam_width:
        raise ConfigError(
            f"beam_width={config.beam_width} is more than max_beam_width={config.max_beam_width}, "
            "the widest beam a request may ask for"
        )
    if config.decoding == "sample" and config.n_best > config.max_beam_width:
        raise ConfigError(
            f"n_best={config.n_best} is more than max_beam_width={config.max_beam_width}, "
            "the most samples a request may ask for with decoding=sample"
        )


def warm_up(backend: Backend) -> None:
    """Translate one sentence as a request that names nothing does, and score one pair if the
    backend scores, so that the first request does not wait while TensorFlow traces the decoder
    (another beam width, or the other decoding mode, waits for its own on its first request)."""
    default = backend.default
    sampling = default.sampling if default.mode == "sample" else None
    backend.translate(["Hello."], default.beam_width, default.n_best, sampling=sampling)
    if backend.can_score:
        backend.score([("Hello.", "Hello.")])
