import keras
import numpy as np
import pytest
from conftest import tiny_config

from sequencer import builders, optimization
from sequencer.errors import ConfigError
from sequencer.optimization import SmoothedCrossentropy, WarmupSchedule


def rates(schedule, steps):
    return [float(schedule(step)) for step in steps]


def test_warm_up_then_constant_or_inverse_square_root(tmp_path):
    # Keras passes the number of updates done: step 0 computes the first update's rate.
    constant = optimization.learning_rate(tiny_config(tmp_path, learning_rate="0.01", warmup_steps="4"), 100)
    assert rates(constant, [0, 1, 3, 4, 50]) == pytest.approx([0.0025, 0.005, 0.01, 0.01, 0.01])
    config = tiny_config(tmp_path, learning_rate="0.01", warmup_steps="4", lr_schedule="inverse_sqrt")
    inverse = optimization.learning_rate(config, 100)
    assert rates(inverse, [1, 3, 15, 63]) == pytest.approx([0.005, 0.01, 0.005, 0.0025])
    assert WarmupSchedule.from_config(inverse.get_config()).get_config() == inverse.get_config()
    assert optimization.learning_rate(tiny_config(tmp_path, learning_rate="0.01"), 100) == 0.01


def test_cosine_decays_to_zero_at_the_last_step(tmp_path):
    config = tiny_config(tmp_path, learning_rate="0.01", warmup_steps="10", lr_schedule="cosine")
    cosine = optimization.learning_rate(config, 110)
    assert rates(cosine, [5, 10, 60, 110]) == pytest.approx([0.005, 0.01, 0.005, 0.0], abs=1e-6)


def test_schedules_and_plateaus_do_not_mix(tmp_path):
    with pytest.raises(ConfigError, match="lr_patience lowers a constant learning rate"):
        tiny_config(tmp_path, lr_schedule="cosine", lr_patience="2")
    with pytest.raises(ConfigError, match="lr_patience lowers a constant learning rate"):
        tiny_config(tmp_path, warmup_steps="10", lr_patience="2")  # a warm-up is a schedule too
    with pytest.raises(ConfigError, match="inverse_sqrt needs warmup_steps >= 1"):
        tiny_config(tmp_path, lr_schedule="inverse_sqrt")


def test_label_smoothing_spreads_part_of_each_target_over_the_vocabulary():
    probabilities = np.array([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]], np.float32)
    targets = np.array([[0, 2]])
    smoothed = SmoothedCrossentropy(0.1).call(targets, probabilities).numpy()
    expected = [0.9 * -np.log(p[t]) + 0.1 * -np.log(p).mean() for p, t in zip(probabilities[0], targets[0])]
    assert smoothed[0] == pytest.approx(expected, rel=1e-5)
    plain = keras.losses.SparseCategoricalCrossentropy(reduction=None)(targets, probabilities).numpy()
    assert SmoothedCrossentropy(0.0).call(targets, probabilities).numpy() == pytest.approx(plain, rel=1e-5)


def test_label_smoothing_leaves_padding_out(tmp_path):
    # The Transformer's probabilities carry the decoder inputs' padding mask, which the loss applies.
    config = tiny_config(tmp_path, model="transformer", model_dim="8", num_heads="2", label_smoothing="0.1")
    keras.utils.set_random_seed(0)
    model = builders.get("transformer").create(config, 10, 10)
    model.build()
    model.compile("adam", optimization.loss(config))
    source, decoder_input, target = [[4, 5, 6]], [[1, 4, 5]], [[4, 5, 2]]
    short = model.evaluate([np.array(source), np.array(decoder_input)], np.array(target), verbose=0)
    padded = [np.pad(np.array(rows), [[0, 0], [0, 4]]) for rows in (source, decoder_input, target)]
    assert model.evaluate(padded[:2], padded[2], verbose=0) == pytest.approx(short, rel=1e-5)


def test_accumulating_k_batches_of_b_updates_as_one_batch_of_k_times_b(tmp_path):
    # Pairs of equal lengths, so that the mean of the K batches' mean gradients is the mean over all.
    # SGD, whose update is proportional to the gradient: a sum instead of a mean would show.
    rng = np.random.default_rng(0)
    source, decoder_input, target = (rng.integers(4, 10, size=(8, 5)).astype("int32") for _ in range(3))
    updated = {}
    for name, steps, batch_size in (("accumulated", "4", 2), ("whole", "1", 8)):
        config = tiny_config(
            tmp_path, latent_dim="8", optimizer="sgd", learning_rate="0.5", accumulate_steps=steps, clipnorm="1.0"
        )
        keras.utils.set_random_seed(1)
        model = builders.get("lstm").create(config, 10, 10)
        model.build()
        initial = model.get_weights()
        model.compile(optimization.optimizer(config, total_steps=4), optimization.loss(config))
        model.fit([source, decoder_input], target, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        assert int(model.optimizer.iterations) == 1  # one update either way
        updated[name] = model.get_weights()
    assert not all(np.allclose(before, after) for before, after in zip(initial, updated["whole"]))
    for accumulated, whole in zip(updated["accumulated"], updated["whole"]):
        assert np.allclose(accumulated, whole, atol=1e-6)


def test_warm_up_counts_optimizer_updates_when_gradients_accumulate(tmp_path):
    config = tiny_config(tmp_path, learning_rate="0.01", warmup_steps="4", accumulate_steps="3")
    schedule = optimization.learning_rate(config, 100)
    assert float(schedule(3 * 2 - 1)) == pytest.approx(0.005)  # Keras counts batches: the 2nd update of 4
