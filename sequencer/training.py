"""Training: Keras `fit` over the run's batches with the run's callbacks, in a new run folder or a resumed one.

What the loop needs comes from one module each: the process setup from `devices`, the batches
from `dataset`, the models and checkpoints from `checkpoints`, what each epoch records from
`callbacks`, the average of the last checkpoints from `averaging`.
"""

from __future__ import annotations

import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from sequencer import averaging, dataset, devices
from sequencer.callbacks import (
    CurvePlot,
    EpochCSVLogger,
    EpochLine,
    EpochStats,
    EpochTensorBoard,
    MovingAverageWeights,
    RunState,
    ValidationChrF,
)
from sequencer.checkpoints import (
    TrainingState,
    initialize_from,
    load_checkpoint,
    new_model,
    restore,
    set_seed_states,
)
from sequencer.config import Config, check_resume
from sequencer.corpus import Corpus
from sequencer.evaluation import EVAL_FILE, record, scores_table
from sequencer.files import write_json
from sequencer.runs import (
    CONFIG_FILE,
    METRICS_FILE,
    PLOT_FILE,
    TENSORBOARD_DIR,
    TEST_FILE,
    check_corpus,
    check_resumable,
    create_run,
    keep_metrics_rows,
    load_config,
    load_run,
    mark_latest,
    run_log,
)
from sequencer.text import markdown_table

log = logging.getLogger(__name__)

PROGRESS = ("auto", "bar", "lines", "none")


class Trainer:
    """Trains the model the config describes on a Corpus, in a run folder it creates or resumes.

    `progress` is what the console shows while training: Keras' progress bar ("bar"), one line
    per epoch on standard output ("lines", as train.log has them), nothing ("none"), or ("auto")
    the bar on a terminal and lines elsewhere, so that redirected output holds no terminal codes.
    """

    def __init__(self, config: Config, callbacks: Sequence[keras.callbacks.Callback] = (), progress: str = "auto"):
        if progress not in PROGRESS:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, not {progress!r}")
        self.config = config
        self.extra_callbacks = list(callbacks)
        self.progress = ("bar" if sys.stdout.isatty() else "lines") if progress == "auto" else progress
        self.strategy = devices.setup(config)
        self._pass: tuple[str, int] | None = None  # (corpus fingerprint, batches per pass)

    def train(self, corpus: Corpus) -> Path:
        """Train a new model in a new run folder; return the folder (deleted already on a non-chief worker)."""
        log.info("data: %s", corpus.description())
        with devices.worker_scratch(self.strategy) as scratch:
            if scratch:
                self.config = self.config.replace(model_dir=scratch)
            model = self._starting_model(corpus)
            vocabularies = (corpus.source_vocab, corpus.target_vocab)
            run_dir = create_run(self.config, vocabularies, corpus.summary(), corpus.test_file)
            mark_latest(run_dir)
            log.info("run folder: %s", run_dir)
            return self._fit(model, run_dir, corpus, TrainingState())

    def resume(self, run_dir: Path, corpus: Corpus) -> Path:
        """Continue `run_dir` from its last checkpoint: weights, optimizer state, epoch and counters.

        The config may differ from the run's only in keys declared resumable (and in files,
        prediction and tuning keys); the corpus must be the one the run started with.
        """
        check_resumable(run_dir)
        saved_config = load_config(run_dir)
        check_resume(saved_config, self.config, run_dir)
        check_corpus(run_dir, corpus, self.config.train_dir)
        log.info("data: %s", corpus.description())
        with devices.worker_scratch(self.strategy) as scratch:
            if scratch:
                run_dir = Path(shutil.copytree(run_dir, scratch / run_dir.name))
            checkpoint = load_checkpoint(run_dir, saved_config)
            if checkpoint is None:  # interrupted before its first epoch ended: start it again
                return self._fit(self._starting_model(corpus), run_dir, corpus, TrainingState())
            saved_model, state = checkpoint
            finished = state.finished(self.config)
            if finished:
                reason, hint = finished
                log.info("%s has finished training already (%s)%s", run_dir, reason, hint and f"; {hint}")
                return run_dir
            model = self._new_model(corpus)
            restore(model, saved_model, self.config, saved_config, self.strategy)
            set_seed_states(model, state.seed_states)
            state.resumed_after.append(state.epochs_completed)
            saved, now = saved_config.to_dict(), self.config.to_dict()
            changes = ", ".join(f"{key} {saved[key]} -> {value}" for key, value in now.items() if value != saved[key])
            write_json(run_dir / CONFIG_FILE, now)  # the settings the run trains with from now on
            with run_log(run_dir):  # in train.log too, where the epochs before and after it are
                log.info("resuming %s after epoch %d%s", run_dir, state.epochs_completed, changes and f"; {changes}")
            keep_metrics_rows(run_dir, state.epochs_completed)
            return self._fit(model, run_dir, corpus, state)

    def _fit(self, model: keras.Model, run_dir: Path, corpus: Corpus, state: TrainingState) -> Path:
        """Keras `fit` from the state's epoch to `epochs`, then the test split; on Ctrl-C the run is left resumable."""
        config = self.config
        train_data = dataset.training_batches(config, corpus, state.batches, self.strategy)
        steps, epochs = self._epochs(corpus)
        run_state = RunState(run_dir, config, state, corpus.summary(), averaging.checkpoints_to_keep(config))
        callbacks = [*self._run_callbacks(run_dir, corpus, run_state), *self.extra_callbacks]
        with run_log(run_dir):
            log.debug("%s", _summary_table(model))
            log.info("model %s: %s parameters", model.name, f"{model.count_params():,}")
            if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
                devices.fit_under_multi_worker(model)
            try:
                with self.strategy.scope():
                    model.fit(
                        train_data,
                        steps_per_epoch=steps,
                        validation_data=dataset.validation_batches(config, corpus, self.strategy),
                        epochs=epochs,
                        initial_epoch=state.epochs_completed,
                        callbacks=callbacks,
                        shuffle=False,
                        verbose=1 if self.progress == "bar" else 0,
                    )
            except KeyboardInterrupt:
                kept = state.epochs_completed
                log.warning(
                    "interrupted during epoch %d; %s",
                    kept + 1,
                    f"{run_dir} keeps the run as of epoch {kept}: resume it with --resume"
                    if kept
                    else f"{run_dir} has no finished epoch yet (no model to translate with): --resume starts it again",
                )
                run_state.write_summary(interrupted=True)
                raise
            log.info("best epoch %d of %d; model.keras holds it", state.best_epoch, state.epochs_completed)
            finish(run_dir, config, corpus, self.strategy)
        return run_dir

    def _run_callbacks(self, run_dir: Path, corpus: Corpus, run_state: RunState) -> list[keras.callbacks.Callback]:
        """What each epoch records in the run folder and decides, in the order they must run."""
        config, epochs_completed = self.config, run_state.state.epochs_completed
        chrf = (
            [ValidationChrF(corpus, config, config.eval_every)] if config.eval_every and len(corpus.val_source) else []
        )
        echo = (lambda line: print(line, flush=True)) if self.progress == "lines" else None
        moving_average = [MovingAverageWeights(epochs_completed > 0)] if config.ema_decay else []
        snapshots = (
            [averaging.WeightSnapshots(run_dir, config, epochs_completed).callback()] if config.average_every else []
        )
        return [
            *moving_average,  # first, so that the callbacks after it see and save the average
            *chrf,  # before the others, so that they see val_chrf
            EpochStats(corpus.train_pairs / self._batches_per_pass(corpus)),
            *snapshots,
            run_state,
            EpochCSVLogger(str(run_dir / METRICS_FILE), append=True),
            CurvePlot(run_dir / METRICS_FILE, run_dir / PLOT_FILE, run_state.state),
            EpochTensorBoard(str(run_dir / TENSORBOARD_DIR), write_graph=False),
            EpochLine(self._epochs(corpus)[1], echo),  # last: the epoch is saved when its line appears
        ]

    def _epochs(self, corpus: Corpus) -> tuple[int, int]:
        """Batches per epoch and epochs: `steps_per_epoch` updates, or one pass over the training
        pairs; `epochs`, or as many as `train_steps` updates need (the last may end early)."""
        config = self.config
        steps = config.steps_per_epoch * config.accumulate_steps or self._batches_per_pass(corpus)
        if config.train_steps:
            return steps, -(-config.train_steps * config.accumulate_steps // steps)
        return steps, config.epochs

    def _starting_model(self, corpus: Corpus) -> keras.Model:
        """A new run's model: built and compiled, with the weights of the run `init_from` names, if any."""
        model = self._new_model(corpus)
        if self.config.init_from:
            initialize_from(model, self.config, self.strategy)
            log.info("starting from the weights of %s", self.config.init_from)
        return model

    def _batches_per_pass(self, corpus: Corpus) -> int:
        """Batches of one pass over the corpus (the batcher plans every shard to count them: once)."""
        if self._pass is None or self._pass[0] != corpus.fingerprint:
            self._pass = (corpus.fingerprint, dataset.BatchStream(self.config, corpus).batches_per_pass())
        return self._pass[1]

    def _new_model(self, corpus: Corpus) -> keras.Model:
        """The config's model for the corpus, built and compiled with its schedule over the whole run."""
        steps, epochs = self._epochs(corpus)
        total_steps = self.config.train_steps * self.config.accumulate_steps or steps * epochs
        longest = max(corpus.max_source_len, corpus.max_target_len + 1)  # the target with its marker
        vocab_sizes = (len(corpus.source_vocab), len(corpus.target_vocab))
        return new_model(self.config, vocab_sizes, longest, total_steps, self.strategy)


def finish(run_dir: Path, config: Config, corpus: Corpus, strategy: tf.distribute.Strategy) -> None:
    """What follows the last epoch: the average of the last checkpoints (with `average_last`),
    then the held-out test pairs' scores. A run trained elsewhere (a member of tune.py's
    population, stopped by Ray Tune after its last epoch) is finished with it too."""
    if config.average_last > 1:
        averaging.average_run(run_dir, config, corpus, strategy)
    if corpus.test_file and devices.is_chief(strategy):
        from sequencer.translation import Translator  # translation needs the trained run, not the reverse

        scores, _ = Translator(load_run(run_dir), config).evaluate(corpus.test_pairs)
        record(run_dir, TEST_FILE, scores)
        log.info("held-out test pairs (%s):\n%s", run_dir / EVAL_FILE, scores_table({TEST_FILE: scores}))


def _summary_table(model: keras.Model) -> str:
    """The model's layers and their parameters (a shared layer once per use), for train.log."""
    rows = [[layer.name, type(layer).__name__, f"{layer.count_params():,}"] for layer in model.layers]
    rows.append(["total", "", f"{model.count_params():,}"])
    return markdown_table(["layer", "type", "parameters"], rows, numeric=[False, False, True])
