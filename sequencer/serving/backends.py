"""What the server translates with: a run's model through a `Translator`, or a SavedModel of `scripts/export.py`.

A backend translates a list of sentences with a beam width and an n-best count, and says which
values of them a request may ask for: `RunBackend` decodes with a run's model, with any
beam width up to `max_beam_width`; `ExportBackend` with an export's graph, which fixed its beam
width and n-best when it was made, and so takes those only.

TensorFlow is imported only when a backend is made, so that the script checks its settings first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sequencer.config import Config
from sequencer.errors import ConfigError, DataError
from sequencer.runs import read_export
from sequencer.text import first_line
from sequencer.translation import Hypothesis, keep_finite

if TYPE_CHECKING:
    from sequencer.translation import Translator

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the server translates with: a model, its name and the decoding a request may ask for."""

    name: str  # the run's name, sent with every translation
    beam_width: int  # what a request that names none gets
    n_best: int

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        """The values `field` (beam_width, or n_best with that beam width) may take, and how to say so."""
        ...

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        """The `n_best` best translations of each non-empty sentence, best first."""
        ...


class RunBackend:
    """A run folder's model through a `Translator`: any beam width up to `max_beam_width`.

    The translator makes one decoder per beam width when it is first asked for, and keeps it; it
    keeps no counts, so a long-running server accumulates nothing.
    """

    def __init__(self, translator: Translator, max_beam_width: int):
        self.translator = translator
        self.name = translator.run.path.name
        self.beam_width, self.n_best = translator.beam_width, translator.n_best
        self.max_beam_width = max_beam_width

    @classmethod
    def load(cls, run_dir: Path, config: Config) -> RunBackend:
        from sequencer.devices import configure_device
        from sequencer.runs import load_run
        from sequencer.translation import Translator, warn_if_young

        configure_device(config.device, config.threads)
        run = load_run(run_dir)
        log.info("translating with %s", run.path)
        warn_if_young(run)
        return cls(Translator(run, config), config.max_beam_width)

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        if field == "beam_width":
            return range(1, self.max_beam_width + 1), f"an integer from 1 to {self.max_beam_width} (max_beam_width)"
        return range(1, beam_width + 1), f"an integer from 1 to the beam width, {beam_width}"

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        return self.translator.translate(sentences, beam_width, n_best).hypotheses


class ExportBackend:
    """A SavedModel written by `scripts/export.py`: it decodes with the beam width and n-best fixed in it."""

    def __init__(self, folder: Path, description: dict, batch_size: int):
        import tensorflow as tf

        if description["needs_tensorflow_text"]:
            import tensorflow_text  # noqa: F401 -- registers the SentencePiece ops of a subword export

        try:
            self._saved_model = tf.saved_model.load(str(folder))  # kept: its signature uses the model's tables
            self._signature = self._saved_model.signatures["serving_default"]
        except Exception as error:  # TensorFlow raises many types for a damaged or foreign folder
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f"{folder}: cannot load the SavedModel ({problem})") from None
        self._tf = tf
        self.name = description["run"]
        self.beam_width, self.n_best = description["beam_width"], description["n_best"]
        self.batch_size = batch_size
        self._check_signature(folder)

    def _check_signature(self, folder: Path) -> None:
        """DataError unless the signature is export.py's (text in; translation and score out) and translates."""
        tf = self._tf
        inputs = self._signature.structured_input_signature[1]
        outputs = self._signature.structured_outputs
        text = inputs.get("text")
        if text is None or text.dtype != tf.string or not {"translation", "score"} <= set(outputs):
            shown = ", ".join(f"{name}: {spec.dtype.name}" for name, spec in inputs.items())
            raise DataError(
                f"{folder}: its serving_default signature takes ({shown}) and returns ({', '.join(sorted(outputs))}), "
                "not export.py's (text: string) and (translation, score)"
            )
        try:
            self.translate(["Hello."], self.beam_width, self.n_best)
        except Exception as error:  # whatever the graph raises, it is the export's
            problem = f"{type(error).__name__}: {first_line(error)}"
            raise DataError(f'{folder}: the SavedModel cannot translate "Hello." ({problem})') from None

    @classmethod
    def load(cls, folder: Path, config: Config) -> ExportBackend:
        from sequencer.devices import configure_device

        configure_device(config.device, config.threads)
        log.info("translating with the export %s", folder)
        return cls(folder, read_export(folder), config.decode_batch_size)

    def allowed(self, field: str, beam_width: int) -> tuple[range, str]:
        value = self.beam_width if field == "beam_width" else self.n_best
        fixed = f"beam_width={self.beam_width} and n_best={self.n_best}"
        return range(value, value + 1), f"{value} (this export decodes with {fixed} only)"

    def translate(self, sentences: list[str], beam_width: int, n_best: int) -> list[list[Hypothesis]]:
        found: list[list[Hypothesis]] = []
        for start in range(0, len(sentences), self.batch_size):
            batch = sentences[start : start + self.batch_size]
            output = self._signature(text=self._tf.constant(batch, self._tf.string))
            translations = output["translation"].numpy().reshape(len(batch), -1)  # (B,) or (B, n_best)
            scores = output["score"].numpy().reshape(len(batch), -1)
            for row, row_scores in zip(translations, scores):
                hypotheses = [(text.decode("utf-8"), float(score)) for text, score in zip(row, row_scores)]
                found.append(keep_finite(hypotheses))
        return found


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
