"""Training: the tf.data pipeline, Keras `fit` with the run's callbacks, and resuming a run.

The order of the batches of epoch e depends only on `seed` and e, never on how many epochs this
process has run: a run resumed from its checkpoint after epoch e sees the batches that an
uninterrupted run would, and ends with the same weights.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from sequencer import __version__, batchers, builders, optimization
from sequencer.averaging import average_weights
from sequencer.callbacks import (
    CurvePlot,
    EpochCSVLogger,
    EpochLine,
    EpochStats,
    EpochTensorBoard,
    MovingAverageWeights,
    RunState,
    ValidationChrF,
    WeightSnapshots,
)
from sequencer.config import Config, check_resume
from sequencer.data import Corpus, Sequences, teacher_forcing
from sequencer.devices import check_accumulation, configure_device, is_chief, make_strategy
from sequencer.errors import ConfigError, DataError
from sequencer.evaluation import EVAL_FILE, record, scores_table
from sequencer.files import write_atomically, write_json
from sequencer.runs import (
    AVERAGED_FILE,
    BEST_EPOCH_FILE,
    CONFIG_FILE,
    LOG_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PLOT_FILE,
    SUMMARY_FILE,
    TENSORBOARD_DIR,
    TEST_FILE,
    TrainingState,
    averaging_sources,
    check_resumable,
    create_run,
    load_checkpoint,
    load_config,
    load_model,
    load_run,
    load_summary,
    load_vocabularies,
    mark_latest,
    save_model,
    saved_weights,
    set_seed_states,
)
from sequencer.search import GreedyDecoder
from sequencer.text import markdown_table

log = logging.getLogger(__name__)

PROGRESS = ("bar", "lines", "none")


def replica_slices(batch: np.ndarray, replicas: int) -> list[np.ndarray]:
    """One batch's pair indices split among `replicas`: every replicas-th pair, so that each
    replica of a batch sorted by length gets pairs of every length in it (Keras weighs the
    replicas' losses alike, so their tokens should be alike).

    Every replica gets as many pairs: a batch whose pairs do not divide evenly (a batch of tokens,
    or one of fewer pairs than replicas) repeats its first pairs, at most replicas - 1 of them.
    tf.distribute reduces the replicas' inputs as tensors of one shape (Keras does so with the
    first batch, to build the model), and no replica may get an empty batch.
    """
    pairs = np.resize(batch, -(-len(batch) // replicas) * replicas)  # a multiple of replicas
    return [pairs[replica::replicas] for replica in range(replicas)]


def make_dataset(
    source: Sequences,
    target: Sequences,
    plan: Callable[[int], list[np.ndarray]],
    epochs: Sequence[int],
    batches_per_epoch: int,
    replicas: range = range(1),
    replica_count: int = 1,
) -> tf.data.Dataset:
    """Batches of ((source ids, decoder input ids), decoder target ids) for the given epochs, in order.

    `plan(epoch)` gives the pair indices of each of the `batches_per_epoch` batches of that epoch;
    each batch is padded with id 0 to its own longest pair, inside tf.data, while the model trains
    on the previous one. Under tf.distribute each planned batch is split into `replica_count`
    slices, and this dataset yields the slices of `replicas` (those fed by one input pipeline) in
    turn: together the replicas train on the planned batch (with at most replicas - 1 of its pairs
    repeated, see `replica_slices`). The slices of one batch are padded alike, to the batch's
    longest pair, because the replicas' results are summed.
    """
    decoder_input, decoder_target = teacher_forcing(target)
    columns = [tf.RaggedTensor.from_row_lengths(s.values, s.lengths) for s in (source, decoder_input, decoder_target)]

    def epoch_plan(epoch):
        slices, widths = [], []
        for batch in plan(int(epoch)):
            parts = replica_slices(batch, replica_count)[replicas.start : replicas.stop]
            slices += parts
            widths += [[source.lengths[batch].max(), target.lengths[batch].max() + 1]] * len(parts)
        sizes = np.array([len(part) for part in slices], np.int64)
        return np.concatenate(slices).astype(np.int64), sizes, np.array(widths, np.int64)

    def batches_of(epoch):
        indices, sizes, widths = tf.numpy_function(epoch_plan, [epoch], (tf.int64,) * 3, stateful=False)
        indices.set_shape([None])
        sizes.set_shape([None])
        widths.set_shape([None, 2])
        return tf.data.Dataset.from_tensor_slices((tf.RaggedTensor.from_row_lengths(indices, sizes), widths))

    def pad_to(ids, width):
        return tf.pad(ids, [[0, 0], [0, width - tf.shape(ids, tf.int64)[1]]])

    def gather(indices, widths):
        source_ids, input_ids, target_ids = (
            pad_to(tf.gather(column, indices).to_tensor(), width)
            for column, width in zip(columns, (widths[0], widths[1], widths[1]))
        )
        return (source_ids, input_ids), target_ids

    batches = tf.data.Dataset.from_tensor_slices(tf.constant(list(epochs), tf.int64)).flat_map(batches_of)
    batches = batches.apply(tf.data.experimental.assert_cardinality(len(epochs) * batches_per_epoch * len(replicas)))
    return batches.map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


class Trainer:
    """Trains the model the config describes on a Corpus, in a run folder it creates or resumes.

    `progress` is what the console shows while training: Keras' progress bar ("bar"), one line
    per epoch on standard output ("lines", as train.log has them), or nothing ("none").
    """

    def __init__(self, config: Config, callbacks: Sequence[keras.callbacks.Callback] = (), progress: str = "bar"):
        if progress not in PROGRESS:
            raise ValueError(f"progress must be one of {', '.join(PROGRESS)}, not {progress!r}")
        self.config = config
        self.model_class = builders.get(config.model)
        self.batcher = batchers.get(config.batcher)()
        self.extra_callbacks = list(callbacks)
        self.progress = progress
        self._prepare()

    def train(self, corpus: Corpus) -> Path:
        """Train a new model in a new run folder; return the folder (deleted already on a non-chief worker)."""
        log.info("data: %s", corpus.description())
        with self._worker_scratch() as scratch:
            if scratch:
                self.config = self.config.replace(model_dir=scratch)
            model = self._new_model(corpus)
            vocabularies = (corpus.source_vocab, corpus.target_vocab)
            run_dir = create_run(self.config, vocabularies, data_summary(corpus), corpus.test_pairs)
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
        self._check_corpus(run_dir, corpus)
        log.info("data: %s", corpus.description())
        with self._worker_scratch() as scratch:
            if scratch:
                run_dir = Path(shutil.copytree(run_dir, scratch / run_dir.name))
            return self._resume(run_dir, corpus, saved_config)

    def _check_corpus(self, run_dir: Path, corpus: Corpus) -> None:
        """DataError unless `corpus` holds the pairs `run_dir` was trained on, read with its vocabularies."""
        if load_summary(run_dir).get("data_fingerprint") != corpus.fingerprint:
            raise DataError(f"the training data in {self.config.train_dir} changed since {run_dir} started")
        if load_vocabularies(run_dir) != (corpus.source_vocab, corpus.target_vocab):
            raise DataError(f"the corpus for {run_dir} must be read with its vocabularies")

    @contextmanager
    def _worker_scratch(self):
        """None on the process that writes the run; a temporary folder, deleted afterwards, on the
        other workers of a multi-worker cluster, which save what the chief saves (TensorFlow's
        advice: saving may take part in collective operations) and throw it away."""
        if is_chief(self.strategy):
            yield None
            return
        scratch = Path(tempfile.mkdtemp(prefix="sequencer-worker-"))
        try:
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _resume(self, run_dir: Path, corpus: Corpus, saved_config: Config) -> Path:
        checkpoint = load_checkpoint(run_dir)
        if checkpoint is None:  # interrupted before its first epoch ended: start it again
            model, state = self._new_model(corpus), TrainingState()
        else:
            saved_model, state = checkpoint
            if state.finished(self.config.epochs):
                done = state.epochs_completed
                more = "" if state.stopped_early else f"; --epochs above {done} trains it further"
                log.info("%s has finished training already (epoch %d)%s", run_dir, done, more)
                return run_dir
            model = self._continue(saved_model, corpus, saved_config)
            set_seed_states(model, state.seed_states)
            state.resumed_after.append(state.epochs_completed)
        saved, now = saved_config.to_dict(), self.config.to_dict()
        changes = ", ".join(f"{key} {saved[key]} -> {value}" for key, value in now.items() if value != saved[key])
        write_json(run_dir / CONFIG_FILE, now)  # the settings the run trains with from now on
        with self._run_log(run_dir):  # in train.log too, where the epochs before and after it are
            log.info("resuming %s after epoch %d%s", run_dir, state.epochs_completed, f"; {changes}" if changes else "")
        _keep_metrics_rows(run_dir / METRICS_FILE, state.epochs_completed)
        return self._fit(model, run_dir, corpus, state)

    def _fit(self, model: keras.Model, run_dir: Path, corpus: Corpus, state: TrainingState) -> Path:
        """Keras `fit` from the state's epoch to `epochs`, then the test split; on Ctrl-C the run is left resumable."""
        train_data, steps = self._training_batches(corpus, state.epochs_completed)
        run_state = RunState(run_dir, self.config, state, data_summary(corpus))
        with self._run_log(run_dir):
            log.debug("%s", _summary_table(model))
            log.info("model %s: %s parameters", model.name, f"{model.count_params():,}")
            try:
                self._keras_fit(
                    model,
                    train_data,
                    steps,
                    self._validation_batches(corpus),
                    state,
                    [*self._run_callbacks(run_dir, corpus, run_state), *self.extra_callbacks],
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
            self.finish(run_dir, corpus)
        return run_dir

    def finish(self, run_dir: Path, corpus: Corpus) -> None:
        """What follows the last epoch: the average of the last checkpoints (with `average_last`),
        then the held-out test pairs' scores. A run trained elsewhere (a member of tune.py's
        population, stopped by Ray Tune after its last epoch) is finished with it too."""
        if self.config.average_last > 1:
            self.average(run_dir, corpus)
        if corpus.test_pairs and is_chief(self.strategy):
            self._evaluate(run_dir, corpus.test_pairs)

    def average(self, run_dir: Path, corpus: Corpus) -> dict | None:
        """Average the weights of the run's last `average_last` checkpoints (Vaswani et al., 2017),
        or of its last snapshots with `average_every`.

        The average and the best epoch's model are scored on the validation pairs (by `monitor`,
        or val_loss when the monitor is a training metric); the better is model.keras, and the
        other is kept as averaged.keras or best-epoch.keras. Both scores go into summary.json
        under "averaging" with the file of each, which is also returned. model.keras exists at
        every moment, and the best epoch's model is never lost: best-epoch.keras exists exactly
        when model.keras holds an average (RunState removes it when a later epoch is better).
        """
        self._check_corpus(run_dir, corpus)  # its validation pairs are the run's own
        sources = averaging_sources(run_dir, self.config)[-self.config.average_last :]
        if len(sources) < 2:
            every = self.config.average_every
            kept = f"{len(sources)} " + (f"snapshot(s), one every {every} updates" if every else "checkpoint(s)")
            log.info("average_last=%d: the run kept %s; nothing averaged", self.config.average_last, kept)
            return None
        averaged = self._new_model(corpus)
        averaged.set_weights(average_weights({source.name: saved_weights(source, self.config) for source in sources}))
        single_file = run_dir / (BEST_EPOCH_FILE if (run_dir / BEST_EPOCH_FILE).is_file() else MODEL_FILE)
        single = self._new_model(corpus)
        single.set_weights(load_model(single_file, self.config).get_weights())
        metric, mode = self.config.validation_monitor
        scores = {"averaged": self._validation_score(averaged, corpus, metric)}
        scores["best"] = self._validation_score(single, corpus, metric)
        better = scores["averaged"] > scores["best"] if mode == "max" else scores["averaged"] < scores["best"]
        save_model(averaged, run_dir / AVERAGED_FILE)
        if better:
            if single_file.name == MODEL_FILE:
                save_model(single, run_dir / BEST_EPOCH_FILE)
            os.replace(run_dir / AVERAGED_FILE, run_dir / MODEL_FILE)
        elif single_file.name == BEST_EPOCH_FILE:  # model.keras held an earlier average: the best epoch is back
            os.replace(single_file, run_dir / MODEL_FILE)
        record = {
            "checkpoints": [source.name for source in sources],
            "metric": metric,
            "averaged": scores["averaged"],
            "best_epoch": scores["best"],
            "model.keras": "averaged" if better else "best epoch",
            "files": {"averaged": MODEL_FILE, "best_epoch": BEST_EPOCH_FILE}
            if better
            else {"averaged": AVERAGED_FILE, "best_epoch": MODEL_FILE},
        }
        summary = load_summary(run_dir)
        write_json(run_dir / SUMMARY_FILE, {**summary, "averaging": record})
        log.info(
            "average of %s: %s %.4g, best epoch %.4g; model.keras holds the %s",
            ", ".join(record["checkpoints"]),
            metric,
            scores["averaged"],
            scores["best"],
            record["model.keras"],
        )
        return record

    def _validation_score(self, model: keras.Model, corpus: Corpus, metric: str) -> float:
        """`metric` (val_loss, val_accuracy or val_chrf) of `model` on the validation pairs."""
        config = self.config
        if metric == "val_chrf":
            return ValidationChrF(corpus, config, every=1).chrf(GreedyDecoder(model))
        with self.strategy.scope():
            results = model.evaluate(self._validation_batches(corpus), verbose=0, return_dict=True)
        return float(results[metric.removeprefix("val_")])

    def _batches(self, source: Sequences, target: Sequences, epoch: int | None) -> list[np.ndarray]:
        """The pair indices of each batch of `epoch` (None: the fixed order of validation)."""
        lengths = np.stack([source.lengths, target.lengths], axis=1)
        rng = None if epoch is None else np.random.default_rng([self.config.seed, epoch])
        return self.batcher.batches(lengths, self.config.batch_size, rng, batch_tokens=self.config.batch_tokens)

    def _training_batches(self, corpus: Corpus, first_epoch: int) -> tuple[tf.data.Dataset, int]:
        """The batches of the epochs from `first_epoch` on, and the number of batches per epoch."""
        config = self.config

        def plan(epoch: int) -> list[np.ndarray]:
            return self._batches(corpus.train_source, corpus.train_target, epoch)

        steps = len(plan(0))
        if config.batch_tokens:
            _warn_of_pairs_over_budget(corpus, config.batch_tokens)
        if config.batch_tokens and len(plan(1)) != steps:
            raise ConfigError(f"batcher={config.batcher} must make as many batches of tokens in every epoch")
        if not config.batch_tokens and steps != -(-len(corpus.train_source) // config.batch_size):
            raise ConfigError(f"batcher={config.batcher} must make batches of {config.batch_size} pairs but one")
        epochs = range(first_epoch, config.epochs)
        data = self._distribute(
            lambda *replicas: make_dataset(corpus.train_source, corpus.train_target, plan, epochs, steps, *replicas)
        )
        return data, steps

    def _validation_batches(self, corpus: Corpus) -> tf.data.Dataset | None:
        """The validation pairs in fixed batches, or None without any."""
        if not len(corpus.val_source):
            return None
        batches = self._batches(corpus.val_source, corpus.val_target, None)
        return self._distribute(
            lambda *replicas: make_dataset(
                corpus.val_source, corpus.val_target, lambda _: batches, [0], len(batches), *replicas
            )
        )

    def _run_callbacks(self, run_dir: Path, corpus: Corpus, run_state: RunState) -> list[keras.callbacks.Callback]:
        """What each epoch records in the run folder and decides, in the order they must run."""
        config = self.config
        chrf = []
        if config.eval_every and len(corpus.val_source):
            chrf = [ValidationChrF(corpus, config, config.eval_every)]
        echo = (lambda line: print(line, flush=True)) if self.progress == "lines" else None
        resumed = run_state.state.epochs_completed > 0
        moving_average = [MovingAverageWeights(resumed)] if config.ema_decay else []
        snapshots = [WeightSnapshots(run_dir, config, run_state.state.epochs_completed)] if config.average_every else []
        return [
            *moving_average,  # first, so that the callbacks after it see and save the average
            *chrf,  # before the others, so that they see val_chrf
            EpochStats(len(corpus.train_source)),
            *snapshots,
            run_state,
            EpochCSVLogger(str(run_dir / METRICS_FILE), append=True),
            CurvePlot(run_dir / METRICS_FILE, run_dir / PLOT_FILE, run_state.state),
            EpochTensorBoard(str(run_dir / TENSORBOARD_DIR), write_graph=False),
            EpochLine(config.epochs, echo),  # last: the epoch is saved when its line appears
        ]

    @contextmanager
    def _run_log(self, run_dir: Path):
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

    def _keras_fit(self, model, train_data, steps, val_data, state: TrainingState, callbacks) -> None:
        if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy):
            _work_around_keras_multi_worker(model)
        with self.strategy.scope():
            model.fit(
                train_data,
                steps_per_epoch=steps,
                validation_data=val_data,
                epochs=self.config.epochs,
                initial_epoch=state.epochs_completed,
                callbacks=callbacks,
                shuffle=False,
                verbose=1 if self.progress == "bar" else 0,
            )

    def _distribute(self, make: Callable[..., tf.data.Dataset]) -> tf.data.Dataset | tf.distribute.DistributedDataset:
        """`make()` on one device; under several replicas, `make(replicas, replica_count)` for each input pipeline."""
        if self.strategy.num_replicas_in_sync == 1:
            return make()

        def pipeline(context: tf.distribute.InputContext) -> tf.data.Dataset:
            local = context.num_replicas_in_sync // context.num_input_pipelines
            first = context.input_pipeline_id * local
            return make(range(first, first + local), context.num_replicas_in_sync)

        return self.strategy.distribute_datasets_from_function(pipeline)

    def _evaluate(self, run_dir: Path, test_pairs: list[tuple[str, str]]) -> None:
        """Score the best model on the held-out test pairs, into eval.json."""
        from sequencer.prediction import Predictor  # prediction needs the trained run, not the reverse

        scores = Predictor(load_run(run_dir), self.config).evaluate(test_pairs)
        record(run_dir, TEST_FILE, scores)
        log.info("held-out test pairs (%s):\n%s", run_dir / EVAL_FILE, scores_table({TEST_FILE: scores}))

    def _continue(self, saved: keras.Model, corpus: Corpus, saved_config: Config) -> keras.Model:
        """A model built and compiled from this config, holding `saved`'s weights and optimizer state.

        Building anew, rather than training `saved` as loaded, lets the resumable settings that
        leave the weights' shapes alone (dropout, learning_rate, batch_size) differ from the
        checkpoint's. A learning rate that differs from the run's replaces the saved one, which a
        plateau may have lowered.
        """
        model = self._new_model(corpus)
        model.set_weights(saved.get_weights())
        with self.strategy.scope():
            model.optimizer.build(model.trainable_variables)
        if len(model.optimizer.variables) != len(saved.optimizer.variables):
            raise DataError(f"the checkpoint's optimizer state does not fit optimizer={self.config.optimizer}")
        for variable, value in zip(model.optimizer.variables, saved.optimizer.variables):
            variable.assign(value)
        if self.config.constant_learning_rate and self.config.learning_rate != saved_config.learning_rate:
            model.optimizer.learning_rate = self.config.learning_rate  # a schedule follows the new config by itself
        return model

    def _prepare(self) -> None:
        """Device, distribution strategy, precision and seeds, before any model exists.

        Same seed, same config, same CPU: the same weights, run after run (except with XLA, which
        TensorFlow's op determinism does not cover, so Keras would not compile with it). Mixed precision is
        Keras' mixed_float16 policy; it pays off only on a GPU, so without one it is an error.
        """
        configure_device(self.config.device, self.config.threads)
        self.strategy = make_strategy(self.config.distribution)
        if self.strategy is not tf.distribute.get_strategy():
            distribution = self.config.distribution
            check_accumulation(
                self.config.accumulate_steps, "auto (mirrored)" if distribution == "auto" else distribution
            )
        if self.config.mixed_precision and not tf.config.list_logical_devices("GPU"):
            raise ConfigError("mixed_precision=true needs a GPU, and TensorFlow sees none on this machine")
        keras.mixed_precision.set_global_policy("mixed_float16" if self.config.mixed_precision else "float32")
        keras.utils.set_random_seed(self.config.seed)
        if self.config.jit_compile == "true":
            log.info("jit_compile=true: TensorFlow's op determinism excludes XLA, so reruns may differ slightly")
        else:
            tf.config.experimental.enable_op_determinism()

    def _new_model(self, corpus: Corpus) -> keras.Model:
        """The config's model, built and compiled with its optimizer, schedule and loss."""
        config = self.config
        total_steps = config.epochs * len(self._batches(corpus.train_source, corpus.train_target, 0))
        with self.strategy.scope():  # variables made here are mirrored on every replica
            model = self.model_class.create(config, len(corpus.source_vocab), len(corpus.target_vocab))
            longest = max(corpus.max_source_len, corpus.max_target_len + 1)  # the target with its marker
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


def _summary_table(model: keras.Model) -> str:
    """The model's layers and their parameters (a shared layer once per use), for train.log."""
    rows = [[layer.name, type(layer).__name__, f"{layer.count_params():,}"] for layer in model.layers]
    rows.append(["total", "", f"{model.count_params():,}"])
    return markdown_table(["layer", "type", "parameters"], rows, numeric=[False, False, True])


def _work_around_keras_multi_worker(model: keras.Model) -> None:
    """Two changes that let Keras 3's `fit` run under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Before training, Keras reduces a first batch across the replicas to build the model, which
    fails under this strategy; the model is built already, and with the strategy taken from the
    scope `fit` runs in rather than from the model, Keras skips that step. After each step, Keras
    averages the replicas' logged values along axis 0, which scalars do not have; as vectors of
    one value they average as they should.
    """
    model._distribute_strategy = None

    def as_vectors(step):
        return lambda data: {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)


def data_summary(corpus: Corpus) -> dict:
    return {
        "sequencer_version": __version__,
        "train_pairs": len(corpus.train_source),
        "val_pairs": len(corpus.val_source),
        "test_pairs": len(corpus.test_pairs),
        "max_source_len": corpus.max_source_len,
        "max_target_len": corpus.max_target_len,
        "data_fingerprint": corpus.fingerprint,
    }


def _warn_of_pairs_over_budget(corpus: Corpus, batch_tokens: int) -> None:
    """A budget below the longest pairs makes each of them a batch of one pair, which a user should know."""
    tokens = batchers.pair_tokens(np.stack([corpus.train_source.lengths, corpus.train_target.lengths], axis=1))
    over = int(np.count_nonzero(tokens > batch_tokens))
    if over:
        log.warning(
            "batch_tokens=%d is less than the longest training pair (%d tokens): %d pair(s) over it are "
            "batches of one pair each",
            batch_tokens,
            int(tokens.max()),
            over,
        )


def _keep_metrics_rows(metrics_file: Path, epochs: int) -> None:
    """Drop rows of epochs after the checkpoint, which the resumed run trains again."""
    if not metrics_file.is_file():
        return
    with open(metrics_file, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) <= epochs]
    if kept != rows:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(kept)
        write_atomically(metrics_file, text.getvalue())
