"""Run folders: everything prediction needs from one training run, saved atomically, loaded safely.

A run folder holds `model.keras` (the Keras native format), `vocab.json`, the resolved
`config.json`, `history.json` (the metrics of each epoch) and `summary.json`. It is written under
a temporary name and renamed into place when complete, so an interrupted save never leaves a
folder that prediction would load. `model_dir/latest` names the newest run. Nothing is unpickled
and no code is loaded from a run folder: Keras loads the model in safe mode, the rest is JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras

from sequencer import model as _registers_custom_layers  # noqa: F401  (OneHot must be known to load)
from sequencer.errors import DataError
from sequencer.vocabulary import Vocabulary

MODEL_FILE = "model.keras"
VOCAB_FILE = "vocab.json"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
SUMMARY_FILE = "summary.json"
LATEST_FILE = "latest"


def temporary_path(path: Path) -> Path:
    """A hidden name beside `path` for writing it before it is renamed into place."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


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


def new_run_name(model_dir: Path) -> str:
    """A timestamped name that no folder in `model_dir` has yet."""
    name = datetime.now().strftime("run-%Y%m%d-%H%M%S")
    candidate, number = name, 1
    while (model_dir / candidate).exists():
        number += 1
        candidate = f"{name}-{number}"
    return candidate


def save_run(
    model_dir: Path,
    name: str,
    model: keras.Model,
    vocabularies: tuple[Vocabulary, Vocabulary],
    config: dict,
    history: dict,
    summary: dict,
) -> Path:
    """Write a complete run folder `model_dir/name` and point `model_dir/latest` at it."""
    model_dir.mkdir(parents=True, exist_ok=True)
    partial = temporary_path(model_dir / name)
    partial.mkdir()
    try:
        model.save(partial / MODEL_FILE)
        source_vocab, target_vocab = vocabularies
        write_json(partial / VOCAB_FILE, {"source": source_vocab.to_json(), "target": target_vocab.to_json()})
        write_json(partial / CONFIG_FILE, config)
        write_json(partial / HISTORY_FILE, history)
        write_json(partial / SUMMARY_FILE, summary)
        final = model_dir / name
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    write_atomically(model_dir / LATEST_FILE, name + "\n")
    return final


@dataclass(frozen=True)
class Run:
    """A loaded run folder."""

    path: Path
    model: keras.Model
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    config: dict
    summary: dict


def find_run(model_dir: Path, run: Path | str) -> Path:
    """The run folder to use: `run` if given, else the one `model_dir/latest` names."""
    if run:
        path = Path(run)
        if not (path / MODEL_FILE).is_file():
            raise DataError(f"run={path} is not a run folder: it has no {MODEL_FILE}")
        return path
    latest = model_dir / LATEST_FILE
    if not latest.is_file():
        raise DataError(f"no trained model: {latest} does not exist; train one with scripts/train.py or set run=PATH")
    path = model_dir / latest.read_text(encoding="utf-8").strip()
    if not (path / MODEL_FILE).is_file():
        raise DataError(f"{latest} names {path}, which is not a run folder: it has no {MODEL_FILE}")
    return path


def load_run(path: Path) -> Run:
    """Load a run folder in safe mode; DataError names the file that is missing or unreadable."""
    vocab = _read_json(path / VOCAB_FILE)
    try:
        source_vocab = Vocabulary.from_json(vocab.get("source"))
        target_vocab = Vocabulary.from_json(vocab.get("target"))
    except (ValueError, AttributeError) as error:
        raise DataError(f"{path / VOCAB_FILE}: {error}") from None
    config, summary = _read_json(path / CONFIG_FILE), _read_json(path / SUMMARY_FILE)
    try:
        model = keras.saving.load_model(path / MODEL_FILE, compile=False, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise DataError(
            f"{path / MODEL_FILE}: cannot load the model ({type(error).__name__}: {_first_line(error)})"
        ) from None
    return Run(path, model, source_vocab, target_vocab, config, summary)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} is missing") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no details"
