"""Run folders: one per training run, holding everything prediction and `--resume` need.

    models/<run>/
        config.json          the resolved configuration
        vocab.json           source and target vocabularies
        *.model              the SentencePiece model(s) of subword vocabularies
        model.keras          the best epoch so far by `monitor`: what prediction loads
        checkpoints/last     names the newest checkpoint folder below, for --resume
        checkpoints/epoch-N/ model.keras with its optimizer state, and state.json
        checkpoints/updates/ with average_every: epoch-E-update-U.npz, the weights after update U of epoch E
        summary.json         data sizes, epochs done, best epoch and its metrics, time
        test.txt, eval.json  the held-out test pairs (test_split) and the scores of evaluations
        averaged.keras or best-epoch.keras   with average_last: the model.keras did not take
        metrics.csv, train.log, curves.png, tensorboard/

Every file is written atomically (`files.atomic_path`), and a checkpoint becomes the last one
only when `checkpoints/last` is replaced after it is complete, so an interruption at any moment
leaves a run that prediction and `--resume` accept. `model_dir/latest` names the newest run.
Nothing is unpickled and no code is loaded from a run folder: Keras loads models in safe mode,
everything else is JSON, or NumPy arrays read with `allow_pickle=False`. Keras is imported only
to save or load a model, so that the scripts can check a run folder before TensorFlow starts.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sequencer import builders
from sequencer.config import KEYS, TRAINING_SECTIONS, Config, config_from_dict
from sequencer.errors import ConfigError, DataError
from sequencer.files import atomic_path, read_json, unwritable_reason, write_atomically, write_json
from sequencer.text import first_line
from sequencer.vocabulary import Vocabulary

if TYPE_CHECKING:
    import keras

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
EXPORT_FILE = "export.json"  # in an export's folder (scripts/export.py): how it decodes, and from which run
EXPORT_KEYS = {"run": str, "beam_width": int, "n_best": int, "needs_tensorflow_text": bool}  # export.json holds
SAVED_MODEL_FILE = "saved_model.pb"
AVERAGED_FILE = "averaged.keras"  # the average of the last checkpoints, when it did not replace model.keras
BEST_EPOCH_FILE = "best-epoch.keras"  # the best epoch's model, when the average replaced it in model.keras
LATEST_FILE = "latest"
SNAPSHOTS_DIR = "updates"  # in checkpoints/: the weights every average_every updates, as NumPy arrays
# Names of the checkpoint folders and of the snapshots; anything else in checkpoints/ is not the run's.
_CHECKPOINT_NAME = re.compile(r"epoch-\d+")
_SNAPSHOT_NAME = re.compile(r"epoch-\d+-update-\d+\.npz")

# Training settings that do not go into a run folder's name, and the longest list of settings it holds.
_UNNAMED_KEYS = ("model", "on_bad_line", "metrics", "device", "threads", "distribution")
_NAME_LENGTH = 100
_SEED_STATE = "seed_generator_state"  # how Keras names the state variable of a random generator


@dataclass
class TrainingState:
    """The counters of a training run, saved with every checkpoint so that a resumed run decides
    (best epoch, early stopping, learning-rate plateaus) exactly as an uninterrupted one would."""

    epochs_completed: int = 0
    best_epoch: int = 0
    best_value: float | None = None  # of `monitor`, at best_epoch
    best_metrics: dict[str, float] = field(default_factory=dict)
    plateau_epochs: int = 0  # epochs since the last better monitor or learning-rate cut
    stopped_early: bool = False
    seconds: float = 0.0  # training time, summed over epochs
    resumed_after: list[int] = field(default_factory=list)  # epochs after which the run was resumed
    seed_states: list[list[int]] = field(default_factory=list)  # of the dropout layers' random generators

    def finished(self, epochs: int) -> bool:
        """Whether a run of `epochs` epochs in this state has nothing left to train."""
        return self.epochs_completed >= epochs or self.stopped_early

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainingState:
        """The state saved by `to_json`; fields an older version did not save take their defaults."""
        known = {item.name for item in fields(cls)}
        return cls(**{name: value for name, value in data.items() if name in known})


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save`, atomically."""
    with atomic_path(path) as temporary:
        model.save(temporary)


def run_name(config: Config) -> str:
    """`run_name`, or the model, the training settings that differ from the defaults, and the time.

    Model settings count only if the model reads them; settings past `_NAME_LENGTH` characters
    are counted (`+3`) rather than named: config.json holds them all.
    """
    if config.run_name:
        return config.run_name
    values = config.to_dict()
    model_keys = builders.settings_of(config.model)
    parts, left_out = [config.model], 0
    for key in KEYS:
        if key.section not in TRAINING_SECTIONS or key.name in _UNNAMED_KEYS or values[key.name] == key.default:
            continue
        if key.section == "Model" and key.name not in model_keys:
            continue
        part = f"{key.name}={key.format(values[key.name])}"
        if len("-".join([*parts, part])) <= _NAME_LENGTH:
            parts.append(part)
        else:
            left_out += 1
    if left_out:
        parts.append(f"+{left_out}")
    parts.append(datetime.now().strftime("%Y%m%d-%H%M%S"))
    return "-".join(parts)


def check_new_run(config: Config) -> None:
    """ConfigError unless a new run can be made in `model_dir` (named `run_name`, if it is set).

    Checked before the data is read and TensorFlow starts, so that a wrong folder costs a second.
    """
    model_dir = config.model_dir
    if model_dir.exists() and not model_dir.is_dir():
        raise ConfigError(f"model_dir {model_dir} is not a folder")
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
        raise run_name_taken(name, path) from None
    source_vocab, target_vocab = vocabularies
    write_json(path / CONFIG_FILE, config.to_dict())
    for name, data in {**source_vocab.files(), **target_vocab.files()}.items():  # SentencePiece models
        with atomic_path(path / name) as temporary:
            temporary.write_bytes(data)
    write_json(path / VOCAB_FILE, {"source": source_vocab.to_json(), "target": target_vocab.to_json()})
    write_json(path / SUMMARY_FILE, summary)
    if test_pairs:
        write_atomically(path / TEST_FILE, "".join(f"{source}\t{target}\n" for source, target in test_pairs))
    return path


def mark_latest(run_dir: Path) -> None:
    write_atomically(run_dir.parent / LATEST_FILE, run_dir.name + "\n")


def seed_states(model: keras.Model) -> list[list[int]]:
    """The states of the model's random generators (its dropout layers'), which Keras does not save
    with a model: a resumed run needs them to draw the dropout masks an uninterrupted run would."""
    return [variable.numpy().tolist() for variable in model.variables if variable.path.endswith(_SEED_STATE)]


def set_seed_states(model: keras.Model, states: list[list[int]]) -> None:
    """Give the model's random generators the states `seed_states` returned for a model of its kind.

    A model with dropout turned on or off since the checkpoint has other generators (Keras makes
    one only for a rate above 0): they start afresh, as the run is not the same run any more.
    """
    variables = [variable for variable in model.variables if variable.path.endswith(_SEED_STATE)]
    if len(states) == len(variables):
        for variable, value in zip(variables, states):
            variable.assign(value)


def save_checkpoint(run_dir: Path, model: keras.Model, state: TrainingState, keep: int = 1) -> None:
    """Save the model with its optimizer and the training `state`, make it the last checkpoint,
    and delete the epoch checkpoints before the `keep` newest."""
    state.seed_states = seed_states(model)
    checkpoints = run_dir / CHECKPOINTS_DIR
    folder = checkpoints / f"epoch-{state.epochs_completed:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / MODEL_FILE)
    write_json(folder / STATE_FILE, state.to_json())
    write_atomically(checkpoints / LAST_CHECKPOINT, folder.name + "\n")
    for old in checkpoint_folders(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """The run's epoch checkpoints up to the last one, oldest first (later ones are of an abandoned past)."""
    last = _last_checkpoint_epoch(run_dir)
    folders = (path for path in (run_dir / CHECKPOINTS_DIR).glob("epoch-*") if _CHECKPOINT_NAME.fullmatch(path.name))
    return sorted(path for path in folders if _epoch_of(path) <= last)


def save_snapshot(run_dir: Path, model: keras.Model, epoch: int, update: int, keep: int) -> None:
    """Save the model's weights (not the optimizer's) after optimizer update `update`, during
    `epoch` (counted from 1), and delete the snapshots before the `keep` newest.

    A snapshot is an .npz file of the arrays of `model.get_weights()`, in order: no pickle, and a
    third of a checkpoint with Adam's state."""
    path = run_dir / CHECKPOINTS_DIR / SNAPSHOTS_DIR / f"epoch-{epoch:04d}-update-{update:08d}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary, open(temporary, "wb") as stream:
        np.savez(stream, *model.get_weights())
    for old in _snapshots(run_dir)[:-keep]:
        old.unlink(missing_ok=True)


def snapshot_files(run_dir: Path) -> list[Path]:
    """The weight snapshots of the epochs up to the last checkpoint, oldest first (those of a later
    epoch were taken during an epoch that was interrupted before its checkpoint)."""
    last = _last_checkpoint_epoch(run_dir)
    return [path for path in _snapshots(run_dir) if _epoch_of(path) <= last]


def discard_snapshots_after(run_dir: Path, epochs_completed: int) -> None:
    """Delete the snapshots of epochs after `epochs_completed`: a resumed run takes them again."""
    for path in _snapshots(run_dir):
        if _epoch_of(path) > epochs_completed:
            path.unlink(missing_ok=True)


def checkpoints_to_keep(config: Config) -> int:
    """Epoch checkpoints a run keeps: the last `average_last` when it averages them, else (as
    with `average_every`, which averages snapshots) the last one, for --resume."""
    return 1 if config.average_every else max(1, config.average_last)


def averaging_sources(run_dir: Path, config: Config) -> list[Path]:
    """What checkpoint averaging takes its last `average_last` from, oldest first: the snapshot
    files taken every `average_every` updates, or (average_every=0) the epoch checkpoint folders."""
    return snapshot_files(run_dir) if config.average_every else checkpoint_folders(run_dir)


def saved_weights(source: Path, config: Config) -> list[np.ndarray]:
    """The weights of a snapshot file or of a checkpoint folder of a run of `config`'s model."""
    if source.is_dir():
        return load_model(source / MODEL_FILE, config).get_weights()
    try:
        with np.load(source, allow_pickle=False) as arrays:
            return [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{source}: cannot load the weights ({first_line(error)})") from None


def _snapshots(run_dir: Path) -> list[Path]:
    paths = (run_dir / CHECKPOINTS_DIR / SNAPSHOTS_DIR).glob("epoch-*-update-*.npz")
    return sorted(path for path in paths if _SNAPSHOT_NAME.fullmatch(path.name))


def _last_checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of the checkpoint `checkpoints/last` names; 0 if there is none."""
    pointer = run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    if not pointer.is_file():
        return 0
    name = pointer.read_text(encoding="utf-8").strip()
    if not _CHECKPOINT_NAME.fullmatch(name):
        raise DataError(f"{pointer} names {name!r}, not a checkpoint folder (epoch-N)")
    return _epoch_of(Path(name))


def _epoch_of(path: Path) -> int:
    """The epoch in the name of a checkpoint folder (epoch-N) or a snapshot (epoch-N-update-U.npz)."""
    return int(path.name.split("-")[1])


def load_checkpoint(run_dir: Path) -> tuple[keras.Model, TrainingState] | None:
    """The last checkpoint's compiled model (with optimizer state) and training state; None if there is none."""
    pointer = run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    check_resumable(run_dir)
    state = TrainingState.from_json(read_json(folder / STATE_FILE))
    return load_model(folder / MODEL_FILE, load_config(run_dir), compile=True), state


def check_resumable(run_dir: Path) -> None:
    """DataError if the run was saved by a version whose checkpoints this one cannot resume."""
    if "sequencer_version" not in load_summary(run_dir):  # 0.1 recorded no version
        raise DataError(
            f"{run_dir} was saved by sequencer 0.1.0: this version translates with it but cannot resume it; "
            "resume it with sequencer 0.1.0 (commit c622279)"
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


def load_config(run_dir: Path, flags: dict[str, str] | None = None) -> Config:
    """The configuration a run was trained with, `flags` on top."""
    return config_from_dict(read_json(run_dir / CONFIG_FILE), str(run_dir / CONFIG_FILE), flags)


def load_summary(run_dir: Path) -> dict:
    return read_json(run_dir / SUMMARY_FILE)


def load_vocabularies(run_dir: Path) -> tuple[Vocabulary, Vocabulary]:
    vocab = read_json(run_dir / VOCAB_FILE)
    try:
        return Vocabulary.from_json(vocab.get("source"), run_dir), Vocabulary.from_json(vocab.get("target"), run_dir)
    except ValueError as error:
        raise DataError(f"{run_dir / VOCAB_FILE}: {error}") from None


def load_run(path: Path) -> Run:
    """Load a run folder's best model in safe mode; DataError names what is missing or unreadable."""
    source_vocab, target_vocab = load_vocabularies(path)
    config, summary = load_config(path), load_summary(path)
    if not (path / MODEL_FILE).is_file():
        raise DataError(f"{path} has no {MODEL_FILE} yet: its training has not finished an epoch")
    model = load_model(path / MODEL_FILE, config)
    if not isinstance(model, builders.get(config.model)):
        model = _from_version_0_1(model, config, len(source_vocab), len(target_vocab), path)
    return Run(path, model, source_vocab, target_vocab, config, summary)


def load_model(path: Path, config: Config, compile: bool = False) -> keras.Model:
    """Load in safe mode, after importing the run's model file so that its custom layers are known."""
    import keras

    builders.get(config.model)
    if path.is_file() and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise DataError(f"{path}: cannot load the model (not a .keras zip archive: damaged, or cut short)")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise DataError(f"{path}: cannot load the model ({type(error).__name__}: {first_line(error)})") from None


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


def read_export(folder: Path) -> dict:
    """The `export.json` of an export folder, checked: DataError naming the folder if it is not an export."""
    if not folder.is_dir():
        problem = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataError(f"the export folder {folder} {problem}")
    if not (folder / EXPORT_FILE).is_file():
        raise DataError(f"{folder} is not an export of scripts/export.py: it has no {EXPORT_FILE}")
    description = read_json(folder / EXPORT_FILE)
    for key, kind in EXPORT_KEYS.items():
        if type(description.get(key)) is not kind:
            raise DataError(f"{folder / EXPORT_FILE}: {key} is missing or not {kind.__name__}")
    if not (folder / SAVED_MODEL_FILE).is_file():
        raise DataError(f"{folder} is not an export of scripts/export.py: it has no {SAVED_MODEL_FILE}")
    return description


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
