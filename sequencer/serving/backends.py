"""What the server translates with: any translator (a run's model, or an export of `scripts/export.py`), made thin.

A backend translates a list of sentences with a beam width and an n-best count, says which
values of them a request may ask for, and how many source tokens a request holds (its cost,
which `max_request_tokens` bounds). `TranslatorBackend` wraps a translator of `translation`: a
run's or a CTranslate2 export's decodes with any beam width up to `max_beam_width`; a SavedModel
export's only with the beam width and n-best fixed in it when it was made.

TensorFlow (or CTranslate2) is imported only when a backend is loaded, so that the script checks
its settings first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sequencer.config import Config
from sequencer.errors import ConfigError
from sequencer.translation import Hypothesis

if TYPE_CHECKING:
    from sequencer.translation import BatchTranslator

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the server translates with: a model, its name and the decoding a request may ask for."""

    name: str  # the run's name, sent with every translation
    beam_width: int  # what a request that names none gets
    n_best: int

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        """The values `field` (beam_width, or n_best with that beam width) may take, and how to say so."""
        ...

    def source_tokens(self, sentences: list[str]) -> int:
        """How many source tokens the model reads in `sentences`."""
        ...

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each non-empty sentence, best first."""
        ...


class TranslatorBackend:
    """A translator for the server. It keeps no counts (the translator reports, the server drops
    what it does not answer), so a long-running server accumulates nothing; a run's translator
    makes one decoder per beam width when it is first asked for, and keeps it."""

    def __init__(self, translator: BatchTranslator, max_beam_width: int):
        self.translator = translator
        self.name = translator.name
        self.beam_width, self.n_best = translator.beam_width, translator.n_best
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
        if self.translator.fixed_search:
            value = self.beam_width if field == "beam_width" else self.n_best
            fixed = f"beam_width={self.beam_width} and n_best={self.n_best}"
            return range(value, value + 1), f"{value} (this export decodes with {fixed} only)"
        if field == "beam_width":
            return range(1, self.max_beam_width + 1), f"an integer from 1 to {self.max_beam_width} (max_beam_width)"
        return range(1, beam_width + 1), f"an integer from 1 to the beam width, {beam_width}"

    def source_tokens(self, sentences: list[str]) -> int:
        return self.translator.source_tokens(sentences)

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        return self.translator.translate(sentences, beam_width, n_best).hypotheses


def check_settings(config: Config) -> None:
    """ConfigError for Serving settings that contradict the Prediction ones."""
    if config.beam_width > config.max_beam_width:
        raise ConfigError(
            f"beam_width={config.beam_width} is more than max_beam_width={config.max_beam_width}, "
            "the widest beam a request may ask for"
        )


def warm_up(backend: Backend) -> None:
    """Translate one sentence, so that the first request does not wait while TensorFlow traces the decoder."""
    backend.translate(["Hello."], backend.beam_width, backend.n_best)
