"""Checkpoints: what a run saves after every epoch to be resumed exactly, and the models that train from them.

    models/<run>/checkpoints/last       names the newest checkpoint folder, for --resume
    models/<run>/checkpoints/epoch-N/   model.keras with its optimizer state, and state.json

A checkpoint becomes the last one only when `checkpoints/last` is replaced after it is complete,
so an interruption at any moment leaves a checkpoint that `--resume` accepts. `TrainingState`
holds the counters a resumed run needs to decide exactly as an uninterrupted one would. Models
are loaded in Keras' safe mode, after importing the model's builder so that its layers are known:
nothing is unpickled and no code is loaded from a run folder. Keras is imported only to save,
load or build a model, so that the scripts can check a run folder before TensorFlow starts.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from sequencer import builders
from sequencer.config import Config
from sequencer.errors import ConfigError, DataError
from sequencer.files import atomic_path, read_json, write_atomically, write_json
from sequencer.text import first_line

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

MODEL_FILE = "model.keras"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = "last"
STATE_FILE = "state.json"
# The names of checkpoint folders: anything else in checkpoints/ is not one.
CHECKPOINT_NAME = re.compile(r"epoch-\d+")
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
    updates: int = 0  # optimizer updates, one per accumulate_steps batches
    batches: int = 0  # batches trained: where in the stream of batches the run stands (dataset.BatchStream)
    resumed_after: list[int] = field(default_factory=list)  # epochs after which the run was resumed
    seed_states: list[list[int]] = field(default_factory=list)  # of the dropout layers' random generators

    def finished(self, config: Config) -> tuple[str, str] | None:
        """What ended a run of `config` in this state, if it has nothing left to train (early
        stopping, or the limit it reached) and what would let it go on; else None."""
        if self.stopped_early:
            return f"stopped early after epoch {self.epochs_completed}", ""
        if config.train_steps and self.updates >= config.train_steps:
            return f"train_steps={config.train_steps}", f"--train_steps above {self.updates} trains it further"
        if not config.train_steps and self.epochs_completed >= config.epochs:
            done = self.epochs_completed
            return f"epoch {done}", f"--epochs above {done} trains it further"
        if config.max_minutes and self.seconds >= config.max_minutes * 60:
            used = self.seconds / 60
            return f"max_minutes={config.max_minutes:g}", f"--max_minutes above {used:.3g} trains it further"
        return None

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


def load_model(path: Path, config: Config, compile: bool = False) -> keras.Model:
    """Load in safe mode, after importing the run's model file so that its custom layers are known
    (and with `compile`, the module of the schedules and losses a compiled model names)."""
    import keras

    builders.get(config.model)
    if compile:
        from sequencer import optimization  # noqa: F401 -- registers WarmupSchedule and SmoothedCrossentropy
    if path.is_file() and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise DataError(f"{path}: cannot load the model (not a .keras zip archive: damaged, or cut short)")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for a damaged or foreign file
        raise DataError(f"{path}: cannot load the model ({type(error).__name__}: {first_line(error)})") from None


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
    last = last_checkpoint_epoch(run_dir)
    folders = (path for path in (run_dir / CHECKPOINTS_DIR).glob("epoch-*") if CHECKPOINT_NAME.fullmatch(path.name))
    return sorted(path for path in folders if epoch_of(path) <= last)


def last_checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of the checkpoint `checkpoints/last` names; 0 if there is none."""
    pointer = run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    if not pointer.is_file():
        return 0
    name = pointer.read_text(encoding="utf-8").strip()
    if not CHECKPOINT_NAME.fullmatch(name):
        raise DataError(f"{pointer} names {name!r}, not a checkpoint folder (epoch-N)")
    return epoch_of(Path(name))


def epoch_of(path: Path) -> int:
    """The epoch in the name of a checkpoint folder (epoch-N) or a snapshot (epoch-N-update-U.npz)."""
    return int(path.name.split("-")[1])


def load_checkpoint(run_dir: Path, config: Config) -> tuple[keras.Model, TrainingState] | None:
    """The last checkpoint's compiled model (with optimizer state) and training state; None if there is none.

    `config` is the run's own (its `model` says which builder's layers the file holds)."""
    pointer = run_dir / CHECKPOINTS_DIR / LAST_CHECKPOINT
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text(encoding="utf-8").strip()
    state = TrainingState.from_json(read_json(folder / STATE_FILE))
    return load_model(folder / MODEL_FILE, config, compile=True), state


def new_model(
    config: Config,
    vocab_sizes: tuple[int, int],
    longest: int,
    total_steps: int,
    strategy: tf.distribute.Strategy,
) -> keras.Model:
    """The config's model for vocabularies of `vocab_sizes`, built and compiled with its optimizer,
    schedule and loss in the strategy's scope (its variables are mirrored on every replica).

    `longest` is the longest sequence it must read, in tokens (a target with its marker), which a
    model of learned positions may not exceed; `total_steps` the batches the schedule spans.
    """
    from sequencer import optimization

    with strategy.scope():
        model = builders.get(config.model).create(config, *vocab_sizes)
        if model.max_positions and longest > model.max_positions:
            raise ConfigError(
                f"positions=learned reads at most {model.max_positions} tokens, but the longest pair has "
                f"{longest}; use positions=sinusoidal or leave such pairs out"
            )
        model.build()
        model.compile(
            optimizer=optimization.optimizer(config, total_steps),
            loss=optimization.loss(config),
            metrics=config.metrics,
            jit_compile={"auto": "auto", "true": True, "false": False}[config.jit_compile],
        )
    return model


def restore(model: keras.Model, saved: keras.Model, config: Config, saved_config: Config, strategy) -> None:
    """Give `model` (new, compiled from `config`) the weights and optimizer state of `saved`.

    Building anew, rather than training `saved` as loaded, lets the resumable settings that
    leave the weights' shapes alone (dropout, learning_rate, batch_size) differ from the
    checkpoint's. A learning rate that differs from the run's replaces the saved one, which a
    plateau may have lowered.
    """
    model.set_weights(saved.get_weights())
    with strategy.scope():
        model.optimizer.build(model.trainable_variables)
    if len(model.optimizer.variables) != len(saved.optimizer.variables):
        raise DataError(f"the checkpoint's optimizer state does not fit optimizer={config.optimizer}")
    for variable, value in zip(model.optimizer.variables, saved.optimizer.variables):
        variable.assign(value)
    if config.constant_learning_rate and config.learning_rate != saved_config.learning_rate:
        model.optimizer.learning_rate = config.learning_rate  # a schedule follows the new config by itself


def initialize_from(model: keras.Model, config: Config, strategy: tf.distribute.Strategy) -> None:
    """Give `model` (new, compiled from `config`) the weights of the run `config.init_from` names:
    its model.keras (the best epoch, or the average it chose), and with `keep_optimizer` its last
    checkpoint's optimizer state and update count, so that its schedule goes on where it stopped.

    The run's folder is only read. Its model must be the one `config` builds (`check_architecture`).
    """
    from sequencer.runs import check_init_from  # runs imports this module

    source_dir = config.init_from
    trained = check_init_from(config)
    weights = load_model(source_dir / MODEL_FILE, trained).get_weights()
    if config.keep_optimizer:
        checkpoint = load_checkpoint(source_dir, trained)
        if checkpoint is None:
            raise DataError(f"{source_dir} has no checkpoint, so no optimizer state for keep_optimizer=true")
        restore(model, checkpoint[0], config, trained, strategy)
    model.set_weights(weights)
