import csv
import json
import logging
import re
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import DATA, run_folders, tiny_config

from sequencer import Predictor, Preprocessor, Trainer, builders, devices
from sequencer.averaging import validation_score
from sequencer.checkpoints import load_checkpoint, new_model
from sequencer.dataset import validation_batches
from sequencer.devices import configure_device
from sequencer.errors import ConfigError, DataError
from sequencer.runs import load_config, load_run


def train(config, callbacks=()):
    return Trainer(config, callbacks).train(Preprocessor(config).load())


def weights(model):
    return model.get_weights()


def same_weights(a, b, tolerance=0.0):
    return all(np.allclose(x, y, rtol=0, atol=tolerance) for x, y in zip(weights(a), weights(b)))


def metrics_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


class InterruptAt(keras.callbacks.Callback):
    """Ctrl-C in the middle of an epoch, as a user would press it."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_interrupted_in_its_first_epoch_says_so_and_resumes_from_the_start(tmp_path, caplog):
    config = tiny_config(tmp_path, epochs="1")
    with caplog.at_level(logging.WARNING, "sequencer"), pytest.raises(KeyboardInterrupt):
        train(config, [InterruptAt(epoch=0, batch=2)])
    [run_dir] = run_folders(tmp_path / "models")
    assert caplog.messages == [
        f"interrupted during epoch 1; {run_dir} has no finished epoch yet (no model to translate with): "
        "--resume starts it again"
    ]
    resumed = Trainer(config).resume(run_dir, Preprocessor(config).load())
    assert [row["epoch"] for row in metrics_rows(resumed)] == ["1"] and load_run(resumed).model is not None


@pytest.mark.slow
def test_same_seed_same_weights(tmp_path):
    first = train(tiny_config(tmp_path / "a", epochs="1"))
    second = train(tiny_config(tmp_path / "b", epochs="1"))
    other = train(tiny_config(tmp_path / "c", epochs="1", seed="8"))
    assert same_weights(load_run(first).model, load_run(second).model)
    assert not same_weights(load_run(first).model, load_run(other).model)


TRANSFORMER = {
    "model": "transformer",
    "token_level": "subword",
    "subword_vocab": "400",
    "model_dim": "16",
    "num_heads": "2",
    "ffn_dim": "32",
    "dropout": "0.1",
    "optimizer": "adam",
    "lr_schedule": "inverse_sqrt",
    "warmup_steps": "5",
    "label_smoothing": "0.1",
}


TOKENS_AND_ACCUMULATION = {"batch_tokens": "400", "accumulate_steps": "3", "dropout": "0.2", "embedding_dim": "8"}
# Four shards of about 60 pairs and epochs of 5 updates: the run stops and resumes in mid-pass, mid-shard.
SHARDS_AND_STEPS = {"shard_pairs": "60", "steps_per_epoch": "5", "batch_size": "16", "dropout": "0.1"}


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="lstm"),
        pytest.param(TRANSFORMER, id="transformer-subword", marks=pytest.mark.slow),
        pytest.param(TOKENS_AND_ACCUMULATION, id="tokens-accumulated", marks=pytest.mark.slow),
        pytest.param({"ema_decay": "0.9"}, id="moving-average", marks=pytest.mark.slow),
        pytest.param(SHARDS_AND_STEPS, id="shards-and-steps", marks=pytest.mark.slow),
    ],
)
def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path, settings):
    """A run interrupted in its second epoch and resumed ends with the weights and metrics of one
    that was not: the stream of batches takes up at the batch the checkpoint was taken after."""
    config = tiny_config(tmp_path / "whole", epochs="3", **settings)
    whole = train(config)

    config = tiny_config(tmp_path / "parts", epochs="3", **settings)
    with pytest.raises(KeyboardInterrupt):
        train(config, [InterruptAt(epoch=1, batch=3)])
    [interrupted] = run_folders(tmp_path / "parts" / "models")
    summary = json.loads((interrupted / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_completed"] == 1
    assert load_run(interrupted).model is not None  # prediction accepts the interrupted run

    resumed = Trainer(config).resume(interrupted, Preprocessor(config).load())
    assert f"resuming {interrupted} after epoch 1" in (resumed / "train.log").read_text()
    assert same_weights(
        load_checkpoint(whole, load_config(whole))[0], load_checkpoint(resumed, load_config(resumed))[0], 1e-6
    )
    assert same_weights(load_run(whole).model, load_run(resumed).model, 1e-6)
    assert [row["epoch"] for row in metrics_rows(resumed)] == ["1", "2", "3"]
    assert [float(row["loss"]) for row in metrics_rows(resumed)] == pytest.approx(
        [float(row["loss"]) for row in metrics_rows(whole)], rel=1e-5
    )


@pytest.mark.slow
def test_resuming_may_change_learning_rate_dropout_and_batch_size(tmp_path):
    config = tiny_config(tmp_path, epochs="1")
    run_dir = train(config)
    after_one = load_checkpoint(run_dir, load_config(run_dir))[0]
    changed = load_config(run_dir, {"epochs": "2", "learning_rate": "0.01", "dropout": "0.3", "batch_size": "16"})
    Trainer(changed).resume(run_dir, Preprocessor(changed).load())
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["learning_rate"], saved["dropout"], saved["batch_size"]) == (0.01, 0.3, 16)
    model = load_checkpoint(run_dir, load_config(run_dir))[0]
    assert model.get_layer("encoder_lstm").dropout == 0.3
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert int(model.optimizer.iterations) == int(after_one.optimizer.iterations) + -(-244 // 16)  # went on counting
    assert [row["epoch"] for row in metrics_rows(run_dir)] == ["1", "2"]
    assert json.loads((run_dir / "summary.json").read_text())["resumed_after"] == [1]

    reshaped = load_config(run_dir, {"epochs": "3", "latent_dim": "8"})
    with pytest.raises(ConfigError) as caught:
        Trainer(reshaped).resume(run_dir, Preprocessor(reshaped).load())
    assert str(caught.value).startswith(f"latent_dim cannot change when resuming {run_dir} (it was 32, not 8); only ")


class TrainedWeights(keras.callbacks.Callback):
    """The trainable weights after every batch."""

    def __init__(self):
        super().__init__()
        self.after_batch = []

    def on_train_batch_end(self, batch, logs=None):
        self.after_batch.append([keras.ops.convert_to_numpy(v) for v in self.model.trainable_variables])


@pytest.mark.slow
def test_ema_decay_validates_and_saves_the_moving_average_of_the_weights(tmp_path):
    trained = TrainedWeights()
    config = tiny_config(tmp_path, epochs="1", ema_decay="0.8")
    run_dir = train(config, [trained])
    average = trained.after_batch[0]  # Keras starts the average at the weights after the first update
    for weights_now in trained.after_batch[1:]:
        average = [0.8 * mean + 0.2 * value for mean, value in zip(average, weights_now)]
    model = load_run(run_dir).model
    assert all(np.allclose(saved, expected, atol=1e-6) for saved, expected in zip(model.get_weights(), average))
    assert not np.allclose(model.get_weights()[0], trained.after_batch[-1][0], atol=1e-6)
    corpus, strategy = Preprocessor(config).load(), devices.setup(config)
    compiled = new_model(config, (len(corpus.source_vocab), len(corpus.target_vocab)), 0, 1, strategy)
    compiled.set_weights(model.get_weights())
    validated = validation_score(compiled, corpus, config, strategy)
    assert float(metrics_rows(run_dir)[0]["val_loss"]) == pytest.approx(validated, rel=1e-5)


@pytest.mark.slow
def test_a_finished_run_with_ema_decay_goes_on_as_if_it_had_not_stopped(tmp_path):
    whole = train(tiny_config(tmp_path / "whole", epochs="3", ema_decay="0.9"))
    config = tiny_config(tmp_path / "parts", epochs="2", ema_decay="0.9")
    finished = train(config)
    longer = load_config(finished, {"epochs": "3"})
    Trainer(longer).resume(finished, Preprocessor(longer).load())
    assert same_weights(
        load_checkpoint(whole, load_config(whole))[0], load_checkpoint(finished, load_config(finished))[0], 1e-6
    )
    assert same_weights(load_run(whole).model, load_run(finished).model, 1e-6)


@pytest.mark.slow
def test_early_stopping_keeps_the_best_weights(tmp_path):
    # mode=max makes the first epoch's val_loss the best one, since val_loss falls as training goes on.
    config = tiny_config(tmp_path, epochs="5", mode="max", early_stopping_patience="2")
    run_dir = train(config)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["stopped_early"] is True
    assert summary["epochs_completed"] == 3 and summary["best_epoch"] == 1
    rows = metrics_rows(run_dir)
    assert float(rows[2]["val_loss"]) < float(rows[0]["val_loss"])  # the last epoch is not the best one

    data = validation_batches(config, Preprocessor(config).load(), tf.distribute.get_strategy())  # as training's
    best = load_run(run_dir).model
    best.compile(loss="sparse_categorical_crossentropy")
    assert best.evaluate(data, verbose=0) == pytest.approx(float(rows[0]["val_loss"]), rel=1e-5)


@pytest.mark.slow
def test_learning_rate_falls_on_a_plateau_and_gradients_are_clipped(tmp_path):
    config = tiny_config(tmp_path, epochs="3", mode="max", lr_patience="1", lr_factor="0.5", clipnorm="1.0")
    run_dir = train(config)
    assert [float(row["learning_rate"]) for row in metrics_rows(run_dir)] == pytest.approx([0.001, 0.001, 0.0005])
    model, _ = load_checkpoint(run_dir, load_config(run_dir))
    assert model.optimizer.clipnorm == 1.0


@pytest.mark.slow
def test_a_builder_in_a_folder_of_the_builders_path_is_selectable_and_trains(tmp_path, monkeypatch):
    folder = tmp_path / "plugins"
    folder.mkdir()
    monkeypatch.setattr(builders, "__path__", [*builders.__path__, str(folder)])
    (folder / "tmp_test_gru.py").write_text(
        textwrap.dedent(
            '''
            """A GRU encoder-decoder, written by a test."""

            from dataclasses import dataclass

            import keras
            from keras import layers

            from sequencer.layers import OneHot
            from sequencer.seq2seq import Seq2Seq


            @dataclass(frozen=True)
            class GRUSettings:
                latent_dim: int


            @keras.saving.register_keras_serializable(package="test")
            class GRUSeq2Seq(Seq2Seq):
                Settings = GRUSettings

                def __init__(self, source_vocab_size, target_vocab_size, settings, **kwargs):
                    super().__init__(source_vocab_size, target_vocab_size, settings, **kwargs)
                    self.source_one_hot = OneHot(source_vocab_size)
                    self.target_one_hot = OneHot(target_vocab_size)
                    self.encoder = layers.GRU(settings.latent_dim, return_state=True)
                    self.decoder = layers.GRU(settings.latent_dim, return_sequences=True)
                    self.out = layers.Dense(target_vocab_size, activation="softmax")

                def call(self, inputs, training=False):
                    source_ids, decoder_ids = inputs
                    state = self.encode(source_ids, None)
                    return self.out(self.decoder(self.target_one_hot(decoder_ids), initial_state=state))

                def encode(self, source_ids, max_len):
                    return self.encoder(self.source_one_hot(source_ids))[1]

                def step(self, tokens, state, index):
                    output, state = self.decoder.cell(self.target_one_hot(tokens), state)
                    return self.out(output), state[0] if isinstance(state, (list, tuple)) else state
            '''
        )
    )
    assert builders.available()["tmp_test_gru"] == "A GRU encoder-decoder, written by a test."
    config = tiny_config(tmp_path, model="tmp_test_gru", epochs="1")
    run_dir = train(config)
    assert run_dir.name.startswith("tmp_test_gru-char-")
    translations = Predictor.from_config(config).translate(["Hello!", "", "I am cold."])
    assert len(translations) == 3 and translations[1] == ""
    monkeypatch.undo()
    with pytest.raises(ConfigError) as caught:
        tiny_config(tmp_path, model="tmp_test_gru")
    assert "expected one of attention, lstm, transformer" in str(caught.value)


def test_absent_gpu_is_a_clear_error():
    configure_device("cpu")
    with pytest.raises(ConfigError) as caught:
        configure_device("gpu:3")
    assert "device=gpu:3, but TensorFlow sees 0 GPU(s)" in str(caught.value)


def test_monitor_must_be_computable(tmp_path):
    with pytest.raises(ConfigError) as no_validation:
        tiny_config(tmp_path, val_split="0")
    with pytest.raises(ConfigError) as no_accuracy:
        tiny_config(tmp_path, monitor="val_accuracy", metrics="")
    with pytest.raises(ConfigError) as bad_device:
        tiny_config(tmp_path, device="tpu")
    assert "monitor=val_loss needs validation pairs, but val_split=0" in str(no_validation.value)
    assert "needs accuracy in metrics" in str(no_accuracy.value)
    assert "expected auto, cpu, gpu or gpu:N" in str(bad_device.value)


def test_mixed_precision_needs_a_gpu_and_writes_nothing(tmp_path):
    config = tiny_config(tmp_path, mixed_precision="true")
    with pytest.raises(ConfigError) as caught:
        train(config)
    assert "mixed_precision=float16 needs a GPU" in str(caught.value)
    assert not config.model_dir.exists()


@pytest.mark.parametrize("model", ["lstm", "transformer"])
@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_models_under_mixed_precision_keep_float32_outputs(tmp_path, model, half):
    # What a GPU run builds (float16), or a bfloat16 one: 16-bit computation, float32 weights and probabilities.
    keras.mixed_precision.set_global_policy(f"mixed_{half}")
    try:
        config = tiny_config(tmp_path, model=model, latent_dim="8", model_dim="8", num_heads="2")
        seq2seq = builders.get(model).create(config, 7, 9)
        seq2seq.build()
        computing = [layer for layer in seq2seq.layers if layer.name in ("decoder_lstm", "decoder_layer_0")]
        assert computing[0].compute_dtype == half and computing[0].variable_dtype == "float32"
        probabilities, _ = seq2seq.step(np.array([1, 2]), seq2seq.encode(np.array([[4, 5], [6, 0]]), 3), 0)
        assert probabilities.dtype == "float32" and probabilities.shape == (2, 9)
        assert seq2seq([np.array([[4, 5]]), np.array([[1, 4]])]).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
def test_a_bfloat16_transformer_resumes_exactly(tmp_path):
    """The resume test's case of a Transformer trained in bfloat16 (mixed_bfloat16): its float32
    weights, optimizer state and dropout seeds resume as a float32 run's do."""
    test_resumed_run_ends_like_an_uninterrupted_one(tmp_path, {**TRANSFORMER, "mixed_precision": "bfloat16"})


def test_a_run_trained_in_bfloat16_translates_in_float32(trained_run, tmp_path):
    """A model saved under mixed_bfloat16 records that policy; loaded to translate, in any process
    (even one that trained in bfloat16), it computes in float32, with the same float32 weights."""
    import shutil
    import zipfile

    from sequencer.checkpoints import MODEL_FILE, load_model

    run_dir = tmp_path / trained_run.name
    shutil.copytree(trained_run, run_dir)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # as setup leaves a bfloat16 training process
    try:
        trained = load_model(trained_run / MODEL_FILE, load_config(trained_run))  # for training: bfloat16
        assert trained.get_layer("decoder_lstm").compute_dtype == "bfloat16"
        trained.save(run_dir / MODEL_FILE)
        with zipfile.ZipFile(run_dir / MODEL_FILE) as saved:
            assert '"mixed_bfloat16"' in saved.read("config.json").decode()
        model = load_run(run_dir).model
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {layer.compute_dtype for layer in model._flatten_layers()} == {"float32"}
    assert {variable.dtype for variable in model.weights} == {"float32"}
    sentences = ["Hello!", "I am cold."]
    assert Predictor(load_run(run_dir)).translate(sentences) == Predictor(load_run(trained_run)).translate(sentences)


@pytest.mark.slow
def test_held_out_test_pairs_are_saved_and_scored(tmp_path):
    run_dir = train(tiny_config(tmp_path, epochs="1", test_split="0.1"))
    summary = json.loads((run_dir / "summary.json").read_text())
    saved = (run_dir / "test.txt").read_text().splitlines()
    assert len(saved) == summary["test_pairs"] >= 30 and all("\t" in line for line in saved)
    scores = json.loads((run_dir / "eval.json").read_text())["test.txt"]
    assert scores["references"] == len(saved) and 0 < scores["sentences"] <= len(saved)
    log = (run_dir / "train.log").read_text()  # what is said after the last epoch is in the run's log too
    assert "best epoch 1 of 1; model.keras holds it" in log and "held-out test pairs (" in log and "| chrF |" in log


@pytest.mark.slow
def test_validation_chrf_is_logged_and_can_pick_the_best_epoch(tmp_path):
    run_dir = train(tiny_config(tmp_path, epochs="3", eval_every="2", monitor="val_chrf"))
    chrf = [row["val_chrf"] for row in metrics_rows(run_dir)]
    assert chrf[0] == "nan" and chrf[2] == "nan" and 0 <= float(chrf[1]) <= 100
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["monitor"] == "val_chrf" and summary["best_epoch"] == 2  # the only epoch with a chrF
    assert summary["best_metrics"]["val_chrf"] == pytest.approx(float(chrf[1]))
    with pytest.raises(ConfigError) as caught:
        tiny_config(tmp_path, monitor="val_chrf")
    assert "monitor=val_chrf needs eval_every >= 1" in str(caught.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    "level",
    ["word", "subword"],  # subwords with every model, not only the Transformer
)
def test_attention_model_on_words_and_subwords_trains_saves_and_translates_with_beam_search(tmp_path, level):
    settings = {"model": "attention", "token_level": level, "embedding_dim": "16", "dropout": "0.1"}
    if level == "subword":
        settings.update(subword_vocab="400", joint_vocab="false")
    run_dir = train(tiny_config(tmp_path, test_split="0.1", **settings))
    run = load_run(run_dir)
    assert run.config.model == "attention" and run.target_vocab.level == level
    assert json.loads((run_dir / "eval.json").read_text())["test.txt"]["sentences"] > 0
    n_best = Predictor(run, run.config.replace(beam_width=3, n_best=2)).translate_n_best(["Go.", "Who are you?", ""])
    assert [len(alternatives) for alternatives in n_best] == [2, 2, 1]
    assert all("\uffed" not in text for alternatives in n_best for text in alternatives)  # detokenised


@pytest.mark.slow
def test_transformer_on_subwords_trains_saves_and_translates_with_beam_search(tmp_path):
    run_dir = train(tiny_config(tmp_path, test_split="0.1", **TRANSFORMER))
    run = load_run(run_dir)
    assert (run_dir / "subwords.model").is_file() and run.source_vocab is not run.target_vocab
    assert run.source_vocab == run.target_vocab and run.target_vocab.level == "subword"  # one joint model
    assert json.loads((run_dir / "eval.json").read_text())["test.txt"]["sentences"] > 0
    predictor = Predictor(run, run.config.replace(beam_width=3, n_best=2))
    n_best = predictor.translate_n_best(["Go.", "Who are you?", ""])
    assert [len(alternatives) for alternatives in n_best] == [2, 2, 1]
    assert all(alternatives[0] for alternatives in n_best[:2])  # min_output_len: never empty


@pytest.mark.slow
def test_resuming_on_changed_data_is_refused(tmp_path):
    config = tiny_config(tmp_path, epochs="1")
    run_dir = train(config)
    fewer = load_config(run_dir, {"epochs": "2"}).replace(num_samples=299)
    with pytest.raises(DataError, match="changed since"):
        Trainer(load_config(run_dir, {"epochs": "2"})).resume(run_dir, Preprocessor(fewer).load())


@pytest.mark.slow
def test_a_transformer_resumes_with_dropout_turned_off(tmp_path):
    # Keras makes a dropout layer's random generator only for a rate above 0: the checkpoint has
    # generators the resumed model lacks, and the run goes on without them.
    config = tiny_config(tmp_path, epochs="1", **TRANSFORMER)
    run_dir = train(config)
    changed = load_config(run_dir, {"epochs": "2", "dropout": "0"})
    Trainer(changed).resume(run_dir, Preprocessor(changed).load())
    assert json.loads((run_dir / "summary.json").read_text())["epochs_completed"] == 2


def test_learned_positions_refuse_a_pair_longer_than_they_reach(tmp_path):
    (tmp_path / "train").mkdir()
    pairs = ["Go.\tVa !", "Hi.\tSalut.", f"{'a' * 1100}\tb"]
    (tmp_path / "train" / "pairs.txt").write_text("\n".join(pairs) + "\n", encoding="utf-8")
    settings = {"model": "transformer", "model_dim": "8", "num_heads": "2", "positions": "learned"}
    config = tiny_config(tmp_path, train_dir=str(tmp_path / "train"), val_split="0", monitor="loss", **settings)
    with pytest.raises(ConfigError, match="positions=learned reads at most 1024 tokens, but the longest pair has 1100"):
        train(config)


@pytest.mark.slow
def test_a_token_budget_below_every_pair_makes_batches_of_one_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    run_dir = train(tiny_config(tmp_path, epochs="1", batch_tokens="1"))
    assert "batch_tokens=1 is less than the longest training pair" in caplog.text
    assert "244 pair(s) over it are batches of one pair each" in caplog.text
    assert (run_dir / "model.keras").is_file()


@pytest.mark.slow
def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, caplog):
    run_dir = train(tiny_config(tmp_path, epochs="1"))
    before = {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()}
    caplog.set_level(logging.INFO)
    config = load_config(run_dir, {"early_stopping_patience": "5"})  # resumable, but there is nothing to resume
    Trainer(config).resume(run_dir, Preprocessor(config).load())
    assert f"{run_dir} has finished training already (epoch 1); --epochs above 1 trains it further" in caplog.text
    assert f"resuming {run_dir}" not in caplog.text
    assert {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()} == before


@pytest.mark.slow
def test_train_steps_stop_within_an_epoch_and_a_resumed_run_goes_on_with_the_stream(tmp_path, caplog):
    # 244 training pairs in batches of 32: 8 batches an epoch.
    whole = train(tiny_config(tmp_path / "whole", epochs="9", train_steps="12"))
    config = tiny_config(tmp_path / "parts", epochs="9", train_steps="5")
    with caplog.at_level(logging.INFO, logger="sequencer"):
        parts = train(config)
    assert "train_steps=5 reached in epoch 1: stopping at its end, now" in caplog.messages
    summary = json.loads((parts / "summary.json").read_text())
    assert (summary["epochs_completed"], summary["updates"], summary["batches"]) == (1, 5, 5)
    longer = load_config(parts, {"train_steps": "12"})
    Trainer(longer).resume(parts, Preprocessor(longer).load())
    assert json.loads((parts / "summary.json").read_text())["updates"] == 12
    # Epochs of 5 and 7 batches, not 8 and 4: the same 12 batches, in the same order.
    assert [row["epoch"] for row in metrics_rows(parts)] == [row["epoch"] for row in metrics_rows(whole)] == ["1", "2"]
    assert same_weights(load_checkpoint(whole, load_config(whole))[0], load_checkpoint(parts, longer)[0], 1e-6)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sequencer"):
        Trainer(longer).resume(parts, Preprocessor(longer).load())
    assert f"{parts} has finished training already (train_steps=12); --train_steps above 12 trains it further" in (
        caplog.messages
    )


@pytest.mark.slow
def test_max_minutes_stops_with_a_checkpoint_and_a_resumed_run_counts_on(tmp_path, caplog):
    config = tiny_config(tmp_path, epochs="50", max_minutes="0.0001")  # 6 ms: the first update ends it
    run_dir = train(config)
    first = json.loads((run_dir / "summary.json").read_text())
    assert first["epochs_completed"] == 1 and first["updates"] < 8 and first["seconds"] >= 0.006
    with caplog.at_level(logging.INFO, logger="sequencer"):
        Trainer(config).resume(run_dir, Preprocessor(config).load())  # its time is used up
    used_up = f"{run_dir} has finished training already (max_minutes=0.0001); --max_minutes above "
    assert [message for message in caplog.messages if message.startswith(used_up)]
    limit = (first["seconds"] + 4) / 60  # 4 s more, counted on from the time it has trained
    longer = load_config(run_dir, {"max_minutes": f"{limit:.6f}"})
    Trainer(longer).resume(run_dir, Preprocessor(longer).load())
    then = json.loads((run_dir / "summary.json").read_text())
    assert then["updates"] > first["updates"] and limit * 60 - 1e-3 <= then["seconds"] < limit * 60 + 30
    assert then["resumed_after"] == [1]


def test_steps_per_epoch_makes_epochs_of_that_many_updates(tmp_path):
    run_dir = train(tiny_config(tmp_path, epochs="3", steps_per_epoch="3", accumulate_steps="2"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["epochs_completed"], summary["updates"], summary["batches"]) == (3, 9, 18)
    assert len(metrics_rows(run_dir)) == 3


def folder_contents(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def fine_tuning_pairs(folder):
    """Pairs the toy run never trained on: the toy's, recombined, and some with a character it never saw."""
    lines = (DATA / "train" / "toy.txt").read_text(encoding="utf-8").splitlines()[::3]
    pairs = [line.split("\t")[:2] for line in lines]
    recombined = [f"{source}\t{pairs[(i + 1) % len(pairs)][1]}" for i, (source, _) in enumerate(pairs)]
    folder.mkdir()
    (folder / "new.txt").write_text("\n".join(recombined + ["Go Ж.\tVa Ж."] * 4) + "\n", encoding="utf-8")
    return folder


def test_fine_tuning_starts_from_a_run_keeps_its_vocabularies_and_leaves_it_untouched(trained_run, tmp_path, caplog):
    before = folder_contents(trained_run)
    new_data = fine_tuning_pairs(tmp_path / "new")
    # A learning rate that changes nothing: the new run's weights are the trained run's.
    settings = {"train_dir": str(new_data), "epochs": "1", "learning_rate": "1e-30"}
    config = tiny_config(tmp_path, init_from=str(trained_run), **settings)
    with caplog.at_level(logging.INFO, logger="sequencer"):
        tuned = train(config)
    assert folder_contents(trained_run) == before
    assert (tuned / "vocab.json").read_bytes() == before[type(tuned)("vocab.json")]
    assert load_config(tuned).init_from == trained_run  # the new run says where it came from
    assert same_weights(load_run(tuned).model, load_run(trained_run).model, tolerance=1e-6)
    unknown = re.search(r"(\d+) source and (\d+) target token\(s\) unknown to the given vocabularies", caplog.text)
    assert unknown and int(unknown[1]) > 0 and int(unknown[2]) > 0  # "Ж" among them
    assert f"starting from the weights of {trained_run}" in caplog.text
    assert json.loads((tuned / "summary.json").read_text())["updates"] < 10  # a fresh optimizer: counted from 0


def test_fine_tuning_a_run_of_another_model_or_vocabulary_is_one_line_naming_the_key(trained_run, tmp_path):
    from sequencer.runs import check_init_from

    for flags, key in (({"latent_dim": "48"}, "latent_dim"), ({"token_level": "word"}, "token_level")):
        with pytest.raises(ConfigError, match=rf"^{key}=\S+ differs from the \S+ of {trained_run}, .*; set {key}="):
            check_init_from(tiny_config(tmp_path, init_from=str(trained_run), **flags))
    with pytest.raises(ConfigError, match=r"init_from=.*nowhere: the folder does not exist; set init_from"):
        check_init_from(tiny_config(tmp_path, init_from=str(tmp_path / "nowhere")))
