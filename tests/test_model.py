import keras
import numpy as np

from sequencer.model import OneHot, build_model
from sequencer.vocabulary import END_ID, START_ID


def batch(pad_to: int):
    """Two pairs padded with id 0 to `pad_to` columns: inputs and targets of teacher forcing."""
    sources = [[4, 5, 6], [7]]
    targets = [[4, 5], [6, 6, 7]]
    source_ids = np.zeros((2, pad_to), np.int32)
    decoder_input = np.zeros((2, pad_to), np.int32)
    decoder_target = np.zeros((2, pad_to), np.int32)
    for row, (source, target) in enumerate(zip(sources, targets)):
        source_ids[row, : len(source)] = source
        decoder_input[row, : len(target) + 1] = [START_ID, *target]
        decoder_target[row, : len(target) + 1] = [*target, END_ID]
    return [source_ids, decoder_input], decoder_target


def test_padding_counts_neither_in_loss_nor_in_accuracy():
    keras.utils.set_random_seed(0)
    model = build_model(10, 10, 8)
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    inputs, targets = batch(4)
    short = model.evaluate(inputs, targets, verbose=0, return_dict=True)
    long = model.evaluate(*batch(12), verbose=0, return_dict=True)
    assert np.isclose(short["loss"], long["loss"], rtol=1e-5)
    assert np.isclose(short["accuracy"], long["accuracy"])

    probabilities = model.predict(inputs, verbose=0)
    real = inputs[1] != 0
    chosen = np.take_along_axis(probabilities, targets[..., None], axis=-1)[..., 0]
    assert np.isclose(short["loss"], -np.log(chosen[real]).mean(), rtol=1e-5)
    correct = probabilities.argmax(-1) == targets
    assert np.isclose(short["accuracy"], correct[real].mean())


def test_one_hot_masks_padding_and_round_trips_its_config():
    layer = OneHot(5, name="one_hot")
    ids = np.array([[1, 4, 0]])
    assert np.array_equal(np.asarray(layer(ids))[0].argmax(-1), [1, 4, 0])
    assert np.array_equal(np.asarray(layer.compute_mask(ids)), [[True, True, False]])
    again = OneHot.from_config(layer.get_config())
    assert again.depth == 5 and again.name == "one_hot"
