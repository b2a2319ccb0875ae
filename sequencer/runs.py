"""Run folders: one per training run, holding everything prediction and `--resume` need.

    models/<run>/
        config.json          the resolved configuration
        vocab.json           source and target vocabularies
        model.keras          the best epoch so far by `monitor`: what prediction loads
        checkpoints/last     names the newest checkpoint folder below, for --resume
        checkpoints/epoch-N/ model.keras with its optimizer state, and state.json
        summary.json         data sizes, epochs done, best epoch and its metrics, time
        test.txt, eval.json  the held-out test pairs (test_split) and the scores of evaluations
        metrics.csv, train.log, curves.png, tensorboard/

Every file is written under a temporary name and renamed into place, and a checkpoint becomes
the last one only when `checkpoints/last` is replaced after it is complete, so an interruption
at any moment leaves a run that prediction and `--resume` accept. `model_dir/latest` names the
newest run. Nothing is unpickled and no code is loaded from a run folder: Keras loads models in
safe mode, everything else is JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras

from sequencer import builders
from sequencer.config import KEYS, Config, config_from_dict
from sequencer.errors import ConfigError, DataError
from sequencer.vocabulary import Vocabulary

CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
MODEL_FILE = "model.keras"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.csv"
LOG_FILE = "train.log"
PLOT_FILE = "curves.png"
TENSORBOARD_DIR = "tensorboard"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last"
STATE_FILE = "state.json"
TEST_FILE = "test.txt"
LATEST_FILE = "latest"

# Settings that say how a run was trained, and so go into its folder name when not the default.
_NAMED_SECTIONS = ("Data", "Model", "Training")
_UNNAMED_KEYS = ("model", "on_bad_line", "metrics", "device", "distribution")


def temporary_path(path: Path) -> Path:
    """A hidden name beside `path` for writing it before it is renamed into place."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file in the same folder, then rename it into place."""
    temporary = temporary_path(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_json(path: Path, data: object) -> None:
    write_atomically(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save` to a temporary `.keras` file beside `path`, then rename it into place."""
    temporary = temporary_path(path)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def run_name(config: Config) -> str:
    """`run_name`, or the model, the training settings that differ from the defaults, and the time."""
    if config.run_name:
        return config.run_name
    values = config.to_dict()
    parts = [config.model]
    for key in KEYS:
        if key.section in _NAMED_SECTIONS and key.name not in _UNNAMED_KEYS and values[key.name] != key.default:
            parts.append(f"{key.name}={key.format(values[key.name])}")
    parts.append(datetime.now().strftime("%Y%m%d-%H%M%S"))
    return "-".join(parts)


def create_run(
    config: Config, vocabularies: tuple[Vocabulary, Vocabulary], summary: dict, test_pairs: list[tuple[str, str]]
) -> Path:
    """A new run folder holding the config, the vocabularies, a first summary and the test pairs."""
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
        raise ConfigError(f"run_name={name}: {path} exists already; choose another name or --resume it") from None
    source_vocab, target_vocab = vocabularies
    write_json(path / CONFIG_FILE, config.to_dict())
    write_json(path / VOCAB_FILE, {"source": source_vocab.to_json(), "target": target_vocab.to_json()})
    write_json(path / SUMMARY_FILE, summary)
    if test_pairs:
        write_atomically(path / TEST_FILE, "".join(f"{source}\t{target}\n" for source, target in test_pairs))
    return path


def mark_latest(run_dir: Path) -> None:
    write_atomically(run_dir.parent / LATEST_FILE, run_dir.name + "\n")


def save_checkpoint(run_dir: Path, model: keras.Model, state: dict) -> None:
    """Save the model with its optimizer and the training `state`, then make it the last checkpoint."""
    checkpoints = run_dir / CHECKPOINTS_DIR
    folder = checkpoints / f"epoch-{state['epochs_completed']:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / MODEL_FILE)
    write_json(folder / STATE_FILE, state)
    write_atomically(checkpoints / LAST_CHECKPOINT, folder.name + "\n")
    for old in checkpoints.glob("epoch-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(run_dir: Path) -> tuple[keras.Model, dict] | None:
    """The last checkpoint's compiled model (with optimizer state) and training state; None if there is none."""
    pointer = run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    state = read_json(folder / STATE_FILE)
    return _load_model(folder / MODEL_FILE, load_config(run_dir), compile=True), state


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
    """The run folder to use: `run` if given, else the one `model_dir/latest` names."""
    if run:
        path = Path(run)
        if not (path / CONFIG_FILE).is_file():
            raise DataError(f"run={path} is not a run folder: it has no {CONFIG_FILE}")
        return path
    latest = model_dir / LATEST_FILE
    if not latest.is_file():
        raise DataError(f"no trained model: {latest} does not exist; train one with scripts/train.py or set run=PATH")
    path = model_dir / latest.read_text(encoding="utf-8").strip()
    if not (path / CONFIG_FILE).is_file():
        raise DataError(f"{latest} names {path}, which is not a run folder: it has no {CONFIG_FILE}")
    return path


def load_config(run_dir: Path, flags: dict[str, str] | None = None) -> Config:
    """The configuration a run was trained with, `flags` on top."""
    return config_from_dict(read_json(run_dir / CONFIG_FILE), str(run_dir / CONFIG_FILE), flags)


def load_vocabularies(run_dir: Path) -> tuple[Vocabulary, Vocabulary]:
    vocab = read_json(run_dir / VOCAB_FILE)
    try:
        return Vocabulary.from_json(vocab.get("source")), Vocabulary.from_json(vocab.get("target"))
    except ValueError as error:
        raise DataError(f"{run_dir / VOCAB_FILE}: {error}") from None


def load_run(path: Path) -> Run:
    """Load a run folder's best model in safe mode; DataError names what is missing or unreadable."""
    source_vocab, target_vocab = load_vocabularies(path)
    config, summary = load_config(path), read_json(path / SUMMARY_FILE)
    if not (path / MODEL_FILE).is_file():
        raise DataError(f"{path} has no {MODEL_FILE} yet: its training has not finished an epoch")
    return Run(path, _load_model(path / MODEL_FILE, config, compile=False), source_vocab, target_vocab, config, summary)


def _load_model(path: Path, config: Config, compile: bool) -> keras.Model:
    """Load in safe mode, after importing the run's builder so that its custom layers are known."""
    builders.get(config.model)
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        lines = str(error).strip().splitlines() or ["no details"]
        raise DataError(f"{path}: cannot load the model ({type(error).__name__}: {lines[0]})") from None


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data
