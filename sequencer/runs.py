"""Run folders: one per training run, holding everything prediction and `--resume` need.

    models/<run>/
        config.json          the resolved configuration
        vocab.json           source and target vocabularies
        *.model              the SentencePiece model(s) of subword vocabularies
        model.keras          the best epoch so far by `monitor`: what prediction loads
        checkpoints/         the last epoch's checkpoint, for --resume (see `checkpoints`), and
                             with average_last the checkpoints or snapshots to average (`averaging`)
        summary.json         data sizes, epochs done, best epoch and its metrics, time
        test.txt, eval.json  the held-out test pairs (test_split) and the scores of evaluations
        averaged.keras or best-epoch.keras   with average_last: the model.keras did not take
        metrics.csv, train.log, curves.png, tensorboard/

Every file is written atomically (`files.atomic_path`), so an interruption at any moment leaves
a run that prediction and `--resume` accept. `model_dir/latest` names the newest run. Nothing is
unpickled and no code is loaded from a run folder: Keras loads models in safe mode, everything
else is JSON, or NumPy arrays read with `allow_pickle=False`. Keras is imported only to load a
model, so that the scripts can check a run folder before TensorFlow starts.
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sequencer import builders
from sequencer.checkpoints import MODEL_FILE, load_model
from sequencer.config import Config, CorpusSource, check_architecture, config_from_dict, where_to_set
from sequencer.errors import ConfigError, DataError
from sequencer.files import atomic_path, read_json, unwritable_reason, write_atomically, write_json
from sequencer.text import first_line
from sequencer.vocabulary import VOCAB_FILE, Vocabulary, load_vocabularies, save_vocabularies

if TYPE_CHECKING:
    import keras

    from sequencer.corpus import Corpus

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.csv"
LOG_FILE = "train.log"
PLOT_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
TEST_FILE = "test.txt"
LATEST_FILE = "latest"


def run_name(config: Config) -> str:
    """`run_name`, or the model, its tokens and the time it started: `transformer-subword-20261207-163038`.

    Short, so that it reads in a listing and types on a command line; config.json holds every setting.
    """
    if config.run_name:
        return config.run_name
    return f"{config.model}-{config.token_level}-{datetime.now():%Y%m%d-%H%M%S}"


def check_new_run(config: Config) -> None:
    """ConfigError unless a new run can be made in `model_dir` (named `run_name`, if it is set).

    Checked before the data is read and TensorFlow starts, so that a wrong folder costs a second.
    """
    model_dir = config.model_dir
    if model_dir.exists() and not model_dir.is_dir():
        raise ConfigError(f"model_dir {model_dir} is not a folder; {where_to_set('model_dir')}")
    reason = unwritable_reason(model_dir)
    if reason:
        raise ConfigError(f"model_dir {model_dir}: {reason}")
    if config.run_name and (model_dir / config.run_name).exists():
        raise run_name_taken(config.run_name, model_dir / config.run_name)


def run_name_taken(name: str, path: Path) -> ConfigError:
    return ConfigError(
        f"run_name={name}: {path} exists already; choose another name (train.py --resume {name} continues that run)"
    )


def create_run(
    config: Config, vocabularies: tuple[Vocabulary, Vocabulary], summary: dict, test_file: Path | None
) -> Path:
    """A new run folder holding the config, the vocabularies, a first summary and a copy of the test pairs' file."""
    config.model_dir.mkdir(parents=True, exist_ok=True)
    name = run_name(config)
    path = config.model_dir / name
    number = 1
    while not config.run_name and path.exists():  # two runs started in the same second
        number += 1
        path = config.model_dir / f"{name}-{number}"
    try:
        path.mkdir()
    except FileExistsError:
        raise run_name_taken(name, path) from None
    write_json(path / CONFIG_FILE, config.to_dict())
    save_vocabularies(path, vocabularies)
    write_json(path / SUMMARY_FILE, summary)
    if test_file:
        with atomic_path(path / TEST_FILE) as temporary:
            shutil.copyfile(test_file, temporary)
    return path


def mark_latest(run_dir: Path) -> None:
    write_atomically(run_dir.parent / LATEST_FILE, run_dir.name + "\n")


# The versions whose runs this one translates with but cannot resume, and the commit that can:
# 0.1 saved other checkpoints; 0.2 drew its splits and batches otherwise (before the prepared corpora).
_NOT_RESUMABLE = {"0.1.0": "c622279", "0.2.0": "cb6c22a"}


# The keys that shape a run's vocabularies: a run fine-tuned from another (init_from) keeps that
# run's vocabularies, so it must keep these too, and the direction of its pairs.
VOCABULARY_KEYS = frozenset({"token_level", "max_vocab", "subword_vocab", "subword_model", "joint_vocab", "reverse"})


def check_init_from(config: Config) -> Config:
    """The config of the run `config.init_from` names, after checking that a new run can start
    from its weights and vocabularies: it has a model, and `config` builds the same model on
    vocabularies made alike (`check_architecture`, naming the first key that differs)."""
    run_dir = config.init_from
    if not (run_dir / CONFIG_FILE).is_file():
        problem = "does not exist" if not run_dir.exists() else f"is not a run folder: it has no {CONFIG_FILE}"
        raise ConfigError(f"init_from={run_dir}: the folder {problem}; {where_to_set('init_from')}")
    if not (run_dir / MODEL_FILE).is_file():
        raise DataError(f"init_from={run_dir}: the run has no {MODEL_FILE} yet (it has not finished an epoch)")
    trained = load_config(run_dir)
    check_architecture(trained, config, builders.settings_of(config.model) | VOCABULARY_KEYS, run_dir)
    return trained


def check_resumable(run_dir: Path) -> None:
    """DataError if the run was saved by a version whose checkpoints this one cannot resume."""
    version = load_summary(run_dir).get("sequencer_version", "0.1.0")  # 0.1 recorded no version
    if version in _NOT_RESUMABLE:
        raise DataError(
            f"{run_dir} was saved by sequencer {version}: this version translates with it but cannot resume it; "
            f"resume it with sequencer {version} (commit {_NOT_RESUMABLE[version]})"
        )


@dataclass(frozen=True)
class Run:
    """A run folder loaded for prediction."""

    path: Path
    model: keras.Model
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    config: Config
    summary: dict


def find_run(model_dir: Path, run: Path | str) -> Path:
    """The run folder to use: `run` if given (see `config.run_folder`), else the one `model_dir/latest` names."""
    if run:
        path = Path(run)
        if not path.exists():
            raise DataError(f"the run folder {path} does not exist")
        if not (path / CONFIG_FILE).is_file():
            raise DataError(f"{path} is not a run folder: it has no {CONFIG_FILE}")
        return path
    latest = model_dir / LATEST_FILE
    if not latest.is_file():
        raise DataError(f"no trained model: {latest} does not exist; train one with scripts/train.py or set run=PATH")
    path = model_dir / latest.read_text(encoding="utf-8").strip()
    if not (path / CONFIG_FILE).is_file():
        problem = "is not a run folder: it has no " + CONFIG_FILE if path.exists() else "does not exist"
        raise DataError(f"{latest} names {path}, which {problem}; set run=NAME to use another run")
    return path


def find_trained_run(model_dir: Path, run: Path | str) -> Path:
    """The run folder to translate with: as `find_run`, but a newest run that has no model yet
    (stopped in its first epoch) is passed over, with a warning, for the newest one that has."""
    path = find_run(model_dir, run)
    if (path / MODEL_FILE).is_file():
        return path
    if run:
        raise DataError(
            f"{path} has no {MODEL_FILE} yet: its training has not finished an epoch; "
            f"train.py --resume {path.name} continues it, or set run=NAME to use another run"
        )
    trained = [
        folder for folder in model_dir.iterdir() if (folder / MODEL_FILE).is_file() and (folder / VOCAB_FILE).is_file()
    ]
    if not trained:
        raise DataError(
            f"{path}, the newest run, has no {MODEL_FILE} yet (its training has not finished an epoch), and no "
            f"other run in {model_dir} has one; train.py --resume {path.name} continues it"
        )
    newest = max(trained, key=lambda folder: (folder / VOCAB_FILE).stat().st_mtime)
    log.warning(
        "%s, the newest run, has no %s yet (its training has not finished an epoch): translating with %s, "
        "the newest run that has one (set run=NAME to choose another)",
        path,
        MODEL_FILE,
        newest,
    )
    return newest


def check_corpus(run_dir: Path, corpus: Corpus, train_dir: tuple[CorpusSource, ...]) -> None:
    """DataError unless `corpus` (read from `train_dir`) holds the pairs `run_dir` was trained on,
    read with its vocabularies."""
    if load_summary(run_dir).get("data_fingerprint") != corpus.fingerprint:
        where = ",".join(str(source.path) for source in train_dir)
        raise DataError(f"the training data in {where} changed since {run_dir} started")
    if load_vocabularies(run_dir) != (corpus.source_vocab, corpus.target_vocab):
        raise DataError(f"the corpus for {run_dir} must be read with its vocabularies")


def load_config(run_dir: Path, flags: dict[str, str] | None = None) -> Config:
    """The configuration a run was trained with, `flags` on top."""
    return config_from_dict(read_json(run_dir / CONFIG_FILE), str(run_dir / CONFIG_FILE), flags)


def load_summary(run_dir: Path) -> dict:
    return read_json(run_dir / SUMMARY_FILE)


def load_run(path: Path) -> Run:
    """Load a run folder's best model in safe mode; DataError names what is missing or unreadable."""
    source_vocab, target_vocab = load_vocabularies(path)
    config, summary = load_config(path), load_summary(path)
    if not (path / MODEL_FILE).is_file():
        raise DataError(f"{path} has no {MODEL_FILE} yet: its training has not finished an epoch")
    from sequencer.seq2seq import float32_policy  # Keras, only to load a model

    with float32_policy():  # translations are decoded in float32, whatever precision the run trained in
        model = load_model(path / MODEL_FILE, config)
        if not isinstance(model, builders.get(config.model)):
            model = _from_version_0_1(model, config, len(source_vocab), len(target_vocab), path)
    return Run(path, model, source_vocab, target_vocab, config, summary)


def _from_version_0_1(saved: keras.Model, config: Config, source_size: int, target_size: int, run_dir: Path):
    """The model of a run saved by sequencer 0.1, whose models were functional Keras models.

    Their layers had the names the models' layers have now, so the weights are copied by name
    into a model built from the run's config: it translates exactly as it did.
    """
    model = builders.get(config.model).create(config, source_size, target_size)
    model.build()
    copied = 0
    try:
        for layer in saved.layers:
            if layer.weights:
                model.get_layer(layer.name).set_weights(layer.get_weights())
                copied += len(layer.weights)
    except ValueError as error:
        raise DataError(f"{run_dir}: not a model of sequencer 0.1 ({first_line(error)})") from None
    if copied != len(model.weights):
        raise DataError(f"{run_dir}: not a model of sequencer 0.1 ({copied} of {len(model.weights)} weights found)")
    return model


@contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """The package's log also goes to the run's train.log, the DEBUG lines (each epoch's) included."""
    handler = logging.FileHandler(run_dir / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    package_log = logging.getLogger("sequencer")
    level = package_log.level
    package_log.addHandler(handler)
    package_log.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(level)
        handler.close()


def keep_metrics_rows(run_dir: Path, epochs: int) -> None:
    """Drop the rows of metrics.csv of epochs after `epochs`, the checkpoint a resumed run trains on from."""
    metrics_file = run_dir / METRICS_FILE
    if not metrics_file.is_file():
        return
    with open(metrics_file, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) <= epochs]
    if kept != rows:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        write_atomically(metrics_file, text.getvalue())
