"""Population-based training (Jaderberg et al., 2017) on Ray Tune.

Each member of the population is an ordinary training run (the `Trainer` of train.py, with its
run folder and checkpoints) inside one Tune trial. After every epoch a member reports its
metrics to Tune; every `ready_after` epochs it also reports its run folder as a Tune checkpoint.
At those points Tune's `PopulationBasedTraining` scheduler restarts each member of the bottom
`truncation` fraction from the checkpoint of a member of the top fraction (exploit: weights,
optimizer state and history) with that member's hyperparameters perturbed (explore). The
restarted member resumes the copied run folder with its new learning_rate, dropout and
batch_size. Ray Tune does all the scheduling; this module only says what a member is.
"""

from __future__ import annotations

import logging
import math
import shutil
import socket
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import keras
import ray
from ray import tune
from ray.tune.schedulers import PopulationBasedTraining

from sequencer import devices
from sequencer.config import Config, config_from_dict, number_pair
from sequencer.corpus import Corpus
from sequencer.errors import ConfigError, TuningError
from sequencer.files import atomic_path, read_json, write_json
from sequencer.runs import SUMMARY_FILE, load_config, mark_latest, run_name_taken
from sequencer.text import first_line, markdown_table
from sequencer.training import Trainer, finish

log = logging.getLogger(__name__)

POPULATION_FILE = "population.json"
LINEAGE_FILE = "lineage.json"
MEMBER_RUN = "run"  # the run folder's name inside each member's trial folder


@dataclass(frozen=True)
class Explored:
    """A setting the population explores, declared once: where its values come from (its range
    key, `<name>_range` LOW,HIGH or `<name>_choices` A,B,...), how they are drawn, how the table shows them."""

    name: str
    draw: str  # "loguniform" or "uniform" over the range, or "choice" among the choices
    shown: str  # the format of a value in the population's table

    def values(self, config: Config) -> tuple[float, float] | list[int]:
        if self.draw == "choice":
            return sorted(int(value) for value in getattr(config, f"{self.name}_choices").split(","))
        return number_pair(getattr(config, f"{self.name}_range"))

    def domain(self, config: Config):
        """Where the scheduler draws (or, for a list, steps to a neighbouring) value from."""
        values = self.values(config)
        return values if self.draw == "choice" else getattr(tune, self.draw)(*values)

    def within(self, value, config: Config):
        """`value` kept in range: PBT's perturbation (x 0.8 or x 1.2) can step out of it."""
        if self.draw == "choice":
            return int(value)
        low, high = self.values(config)
        return min(max(float(value), low), high)


EXPLORED = (
    Explored("learning_rate", "loguniform", "{:.3g}"),
    Explored("dropout", "uniform", "{:.2f}"),
    Explored("batch_size", "choice", "{}"),
)


class ReportToTune(keras.callbacks.Callback):
    """After each epoch, the epoch's metrics and settings to Tune; every `ready_after` epochs, the run folder too.

    It must come after the callbacks that save the run, so the folder it reports is complete.
    """

    def __init__(self, run_dir: Path, config: Config, member: str):
        super().__init__()
        self.run_dir = run_dir
        self.config = config
        self.member = member

    def on_train_begin(self, logs=None):
        """Record in the run's lineage.json who trains it from which epoch with which settings."""
        lineage_file = self.run_dir / LINEAGE_FILE
        lineage = read_json(lineage_file) if lineage_file.is_file() else {"member": self.member, "copied": []}
        epochs = read_json(self.run_dir / SUMMARY_FILE).get("epochs_completed", 0)
        if lineage["member"] != self.member:  # a copy of another member's run: an exploit step
            lineage["copied"].append({"member": lineage["member"], "after_epoch": epochs})
            lineage["member"] = self.member
        settings = {setting.name: getattr(self.config, setting.name) for setting in EXPLORED}
        schedule = lineage.setdefault("schedule", [])
        if not schedule or schedule[-1]["settings"] != settings:
            schedule.append({"from_epoch": epochs + 1, "settings": settings})
        write_json(lineage_file, lineage)

    def on_epoch_end(self, epoch, logs=None):
        metrics = {name: float(value) for name, value in (logs or {}).items()}
        metrics.update({f"hp_{setting.name}": getattr(self.config, setting.name) for setting in EXPLORED})
        epochs = epoch + 1
        if epochs % self.config.ready_after == 0 or epochs == self.config.stop_after:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(self.run_dir))
        else:
            tune.report(metrics)


def train_member(hyperparameters: dict, base: dict, corpus: Corpus) -> None:
    """One member: a new run, or the run of the checkpoint Tune hands it, resumed with `hyperparameters`.

    The checkpoint may be another member's (an exploit step); the run folder's `lineage.json`
    keeps the record (see `ReportToTune.on_train_begin`).
    """
    tuned = config_from_dict(base, "the tuned config")
    context = tune.get_context()
    trial_dir = Path(context.get_trial_dir())
    config = tuned.replace(**within_ranges(hyperparameters, tuned), model_dir=trial_dir, run_name=MEMBER_RUN)
    run_dir = trial_dir / MEMBER_RUN
    trainer = Trainer(config, [ReportToTune(run_dir, config, context.get_trial_id())], progress="none")
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        trainer.train(corpus)
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    with checkpoint.as_directory() as folder:
        shutil.copytree(folder, run_dir)
    trainer.resume(run_dir, corpus)


def within_ranges(hyperparameters: dict, config: Config) -> dict:
    """The explored settings, each kept in its range."""
    return {setting.name: setting.within(hyperparameters[setting.name], config) for setting in EXPLORED}


def search_space(config: Config) -> dict:
    """Where each explored setting starts and how the scheduler may perturb or resample it."""
    return {setting.name: setting.domain(config) for setting in EXPLORED}


def tune_population(config: Config, corpus: Corpus) -> Path:
    """Train a population with PBT on `corpus`; save the best member as an ordinary run folder and return it."""
    mode = config.monitor_mode
    space = search_space(config)
    scheduler = PopulationBasedTraining(
        time_attr="training_iteration",
        perturbation_interval=config.ready_after,
        quantile_fraction=config.truncation,
        hyperparam_mutations=space,
        synch=True,  # members wait for each other at every step, as in the paper's synchronous variant
    )
    base = config.replace(epochs=config.stop_after, early_stopping_patience=0).to_dict()
    experiment = config.model_dir.resolve() / f"pbt-{config.model}-{datetime.now():%Y%m%d-%H%M%S}"
    log.info("data: %s", corpus.description())
    _start_ray(config.ray_address)
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(train_member, base=base, corpus=corpus), {"cpu": 1}),
            # A list in the space is where PBT steps to a neighbour; Tune draws the start from it.
            param_space={
                name: tune.choice(domain) if isinstance(domain, list) else domain for name, domain in space.items()
            },
            tune_config=tune.TuneConfig(
                scheduler=scheduler, num_samples=config.population_size, metric=config.monitor, mode=mode
            ),
            run_config=tune.RunConfig(
                name="members",
                storage_path=str(experiment),
                stop={"training_iteration": config.stop_after},
                # Ray warns that keeping 2 or fewer can delete a checkpoint before a member copies it.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=4),
                verbose=1,
            ),
        )
        # Ray's CSV logger warns when a member copies one whose progress.csv is not written yet;
        # the members' metrics are their run folders' metrics.csv, which a copy carries.
        logging.getLogger("ray.tune.logger").setLevel(logging.ERROR)
        with warnings.catch_warnings():  # advice for class trainables; members are functions
            warnings.filterwarnings("ignore", message="Consider boosting PBT performance by enabling `reuse_actors`")
            results = tuner.fit()
    finally:
        ray.shutdown()
    if results.errors:
        raise TuningError(f"{len(results.errors)} member(s) failed; the first: {first_line(results.errors[0])}")
    best = _save_best(config, results, experiment, mode)
    # Tune stops each member at its last report, before the end of its training: the best run is
    # averaged (average_last) and scored on the test pairs here, as train.py's would be.
    best_config = load_config(best)
    finish(best, best_config, corpus, devices.setup(best_config))
    return best


def _start_ray(address: str) -> None:
    """Ray on the cluster at `address`, or a local one if it is empty."""
    if address:
        check_ray_address(address)
    # The package goes to Ray's workers with the job: they import it wherever they start, on
    # this machine (whatever its working folder) or on a cluster's.
    package = {
        "py_modules": [str(Path(__file__).resolve().parent)],
        "worker_process_setup_hook": "sequencer.cli.start_ray_worker",  # quiet, as the scripts are
    }
    try:
        ray.init(address=address or None, runtime_env=package, include_dashboard=False, configure_logging=False)
    except ConnectionError as error:
        raise ConfigError(f"ray_address={address}: no Ray cluster answers there ({first_line(error)})") from None


def check_ray_address(address: str) -> None:
    """ConfigError at once if nothing listens at `address` (HOST:PORT, as the key's pattern has it),
    where `ray.init` would retry for minutes; anything else is left to Ray."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as error:
        raise ConfigError(f"ray_address={address}: no Ray cluster answers there ({error.strerror or error})") from None


def _save_best(config: Config, results, experiment: Path, mode: str) -> Path:
    """Copy the best member's last checkpoint to model_dir as a run folder, with the population's table."""
    members = []
    for result in results:
        lineage = read_json(Path(result.checkpoint.path) / LINEAGE_FILE)
        members.append(
            {
                "trial": result.metrics["trial_id"],
                "checkpoint": result.checkpoint.path,
                config.monitor: float(result.metrics[config.monitor]),
                "copied": lineage["copied"],
                "schedule": lineage["schedule"],
            }
        )
    sign = 1 if mode == "min" else -1
    members.sort(key=lambda member: (math.isnan(member[config.monitor]), sign * member[config.monitor]))
    best = results.get_best_result(metric=config.monitor, mode=mode, scope="last")
    run_dir = config.model_dir / (config.run_name or f"{experiment.name}-best")
    if run_dir.exists():
        raise run_name_taken(run_dir.name, run_dir)
    with atomic_path(run_dir) as partial, best.checkpoint.as_directory() as folder:
        shutil.copytree(folder, partial)
        write_json(partial / POPULATION_FILE, {"monitor": config.monitor, "members": members})
    mark_latest(run_dir)
    log.info("population (%s, best first):\n%s", config.monitor, members_table(members, config.monitor))
    log.info("best member saved as %s", run_dir)
    return run_dir


def members_table(members: list[dict], monitor: str) -> str:
    """A Markdown table of the members: the final monitored value and the hyperparameter schedule."""
    rows = []
    for member in members:
        schedule = "; ".join(
            f"{step['from_epoch']}: "
            + ", ".join(setting.shown.format(step["settings"][setting.name]) for setting in EXPLORED)
            for step in member["schedule"]
        )
        rows.append([member["trial"], f"{member[monitor]:.4f}", schedule])
    names = ", ".join(setting.name for setting in EXPLORED)
    header = ["member", monitor, f"schedule (from epoch: {names})"]
    return markdown_table(header, rows, numeric=[False, True, False])
