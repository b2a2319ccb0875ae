"""Export folders: what `export.json` holds, checking a folder before anything loads it, and opening one.

`scripts/export.py` writes a run in one of two formats, each a folder a translator can load
without the run folder:

- `savedmodel` (`savedmodel.py`): a TensorFlow SavedModel whose graph tokenises, searches and
  detokenises; its decoding settings are fixed in the graph.
- `ctranslate2` (`ctranslate.py`): a CTranslate2 model of a Transformer, which decodes with any
  beam width and the configuration's Prediction keys, on the CPU, without TensorFlow.

Both hold `export.json` (`EXPORT_KEYS` and the format's own `FORMAT_KEYS`: the one declaration of
what it holds) and the run's vocabularies (`vocab.json` and any SentencePiece model), with which
Python tokenises as the run does. An export made before the `format` field existed is a SavedModel.
Nothing here imports TensorFlow or CTranslate2, so that the scripts check a folder before either starts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from sequencer import __version__
from sequencer.config import KEYS_BY_NAME, KEYS_IN_EXPORT, Config
from sequencer.errors import ConfigError, DataError
from sequencer.files import read_json, unwritable_reason
from sequencer.runs import VOCAB_FILE

if TYPE_CHECKING:
    from sequencer.runs import Run
    from sequencer.translation import BatchTranslator

EXPORT_FILE = "export.json"
# Each format, and the files besides export.json and the vocabularies that show a folder holds one.
FORMATS = {"savedmodel": ("saved_model.pb",), "ctranslate2": ("model.bin", "config.json")}
# What every export.json holds, with its type.
EXPORT_KEYS = {"format": str, "sequencer_version": str, "run": str, "model": str, "token_level": str}
# What each format adds: a SavedModel, the Prediction keys fixed in its graph and whether loading
# it needs tensorflow-text's ops; a CTranslate2 model, its weights' type, the run's longest
# training target (what max_output_len=0 doubles) and the rows of its position tables (the most
# tokens it reads or writes).
FORMAT_KEYS = {
    "savedmodel": {
        **{name: float if KEYS_BY_NAME[name].kind == "float" else int for name in KEYS_IN_EXPORT},
        "needs_tensorflow_text": bool,
    },
    "ctranslate2": {"quantization": str, "max_target_len": int, "max_positions": int},
}
# The config keys that do not apply to translating with an export of each format, and why.
FIXED_KEYS = {
    "savedmodel": (
        (*KEYS_IN_EXPORT, "max_beam_width", "temperature", "top_k", "top_p", "seed"),
        "an export, which decodes as it was exported",
    ),
    "ctranslate2": (("device",), "a CTranslate2 export, which decodes on the CPU"),
}
# The models each format can express: CTranslate2 has the Transformer, not this project's LSTMs.
CONVERTIBLE_MODELS = {"ctranslate2": ("transformer",)}
# The types a CTranslate2 export's weights may have: those CTranslate2 runs on a CPU.
QUANTIZATIONS = ("float32", "int8", "int8_float32")


def describe(run: Run, export_format: str, **fields: object) -> dict:
    """The export.json of `run` in `export_format`: what every export holds, and `fields`, the format's own."""
    description = {
        "format": export_format,
        "sequencer_version": __version__,
        "run": run.path.name,
        "model": run.config.model,
        "token_level": run.source_vocab.level,
        **fields,
    }
    _check_fields(description, Path(EXPORT_FILE))
    return description


def write_description(folder: Path, run: Run, description: dict) -> None:
    """export.json and the run's vocabularies into `folder`, an export being written (not yet in place)."""
    for name, data in {**run.source_vocab.files(), **run.target_vocab.files()}.items():  # SentencePiece models
        (folder / name).write_bytes(data)
    vocabularies = {"source": run.source_vocab.to_json(), "target": run.target_vocab.to_json()}
    (folder / VOCAB_FILE).write_text(json.dumps(vocabularies, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / EXPORT_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")


def read_export(folder: Path) -> dict:
    """The `export.json` of an export folder, checked: DataError naming the folder if it is not an export."""
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"the export folder {folder} {problem}")
    if not (folder / EXPORT_FILE).is_file():
        raise DataError(f"{folder} is not an export of scripts/export.py: it has no {EXPORT_FILE}")
    description = read_json(folder / EXPORT_FILE)
    description.setdefault("format", "savedmodel")  # exports made when SavedModels were the only kind
    _check_fields(description, folder / EXPORT_FILE)
    needed = FORMATS[description["format"]] + ((VOCAB_FILE,) if description["format"] == "ctranslate2" else ())
    for name in needed:
        if not (folder / name).is_file():
            raise DataError(f"{folder} is not an export of scripts/export.py: it has no {name}")
    return description


def _check_fields(description: dict, where: Path) -> None:
    """DataError unless `description` holds every field its format declares, each of its type."""
    export_format = description.get("format")
    if export_format not in FORMATS:
        raise DataError(f"{where}: format is {json.dumps(export_format)}, not one of {', '.join(FORMATS)}")
    for key, kind in {**EXPORT_KEYS, **FORMAT_KEYS[export_format]}.items():
        value = description.get(key)
        if not (type(value) is kind or (kind is float and type(value) is int)):
            raise DataError(f"{where}: {key} is missing or not {kind.__name__}")


def check_convertible(export_format: str, model: str, run_dir: Path) -> None:
    """ConfigError, before anything loads, if `export_format` cannot express the run's `model`."""
    models = CONVERTIBLE_MODELS.get(export_format)
    if models is not None and model not in models:
        can = [name for name in FORMATS if name not in CONVERTIBLE_MODELS or model in CONVERTIBLE_MODELS[name]]
        raise ConfigError(
            f"{run_dir.name} is a model={model} run, which --format {export_format} cannot express "
            f"(it converts model={', '.join(models)} only); export it with --format {' or '.join(can)}"
        )


def check_export_folder(out_dir: Path, force: bool) -> None:
    """ConfigError unless an export can be written to `out_dir`: a new folder (its missing parents
    are made) or an empty one, under a folder this process may write in, or with `force` an earlier
    export, which is replaced. Nothing else is ever replaced, however many of an export's files it holds."""
    empty_folder = out_dir.is_dir() and not out_dir.is_symlink() and not any(out_dir.iterdir())
    if (out_dir.exists() or out_dir.is_symlink()) and not empty_folder:
        if not force:
            raise ConfigError(f"{out_dir} exists already; choose another folder or pass --force to replace it")
        try:
            read_export(out_dir)
        except DataError as error:
            raise ConfigError(f"{error}; --force replaces an export only, so {out_dir} stays as it is") from None
    reason = unwritable_reason(out_dir.parent)
    if reason:
        raise ConfigError(f"cannot make the export folder {out_dir}: {reason}")


def open_export(folder: Path, config: Config) -> BatchTranslator:
    """The translator of an export folder, by its format: the configuration gives the device, the
    threads and, where the format leaves them open, the Prediction keys. DataError if it is not an export."""
    description = read_export(folder)
    if description["format"] == "ctranslate2":
        from sequencer.ctranslate import CTranslate2Translator  # CTranslate2 only, no TensorFlow

        return CTranslate2Translator(folder, description, config)
    from sequencer.savedmodel import SavedModelTranslator

    return SavedModelTranslator(folder, description, config)
