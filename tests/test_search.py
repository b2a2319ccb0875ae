import keras
import numpy as np
import pytest
import tensorflow as tf

from sequencer.builders.lstm import LSTMBuilder
from sequencer.runs import load_run
from sequencer.search import GreedyDecoder
from sequencer.vocabulary import END_ID, PAD_ID, START_ID

SENTENCES = ["Go.", "I am cold.", "Hello!", "Who are you?", "Run!", "We lost.", "Be nice.", "It's me."]


def step_by_step(model, source_ids, max_len):
    """The original example's greedy loop: the whole model on a growing prefix, one character per call."""
    ids = tf.TensorSpec([None, None], tf.int32)
    call = tf.function(lambda inputs: model(inputs, training=False), input_signature=[[ids, ids]])
    prefix = [START_ID]
    for _ in range(max_len):
        probabilities = call([source_ids[None, :], np.array([prefix], np.int32)])
        token = int(np.argmax(probabilities[0, -1]))
        prefix.append(token)
        if token == END_ID:
            break
    return prefix[1:]


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


@pytest.mark.parametrize("weights", ["trained", "random"])
def test_batched_greedy_equals_step_by_step_decoding(run, weights):
    # Random weights make outputs that vary from step to step and sentence to sentence, which a
    # barely trained model does not: the two together check the loop, the states and the padding.
    model = run.model
    if weights == "random":
        keras.utils.set_random_seed(3)
        model = LSTMBuilder(run.config.replace(latent_dim=16)).build(len(run.source_vocab), len(run.target_vocab))
    max_len = 25
    encoded = [run.source_vocab.encode(sentence) for sentence in SENTENCES]
    padded = np.zeros((len(encoded), max(map(len, encoded))), np.int32)
    for row, ids in enumerate(encoded):
        padded[row, : len(ids)] = ids
    batched = GreedyDecoder(LSTMBuilder(run.config).inference(model))(padded, max_len)
    outputs = set()
    for ids, row in zip(encoded, batched):
        reference = step_by_step(model, ids, max_len)
        assert list(row[: len(reference)]) == reference
        assert all(token == PAD_ID for token in row[len(reference) :])
        outputs.add(tuple(reference))
    if weights == "random":
        assert len(outputs) > 1


def test_output_is_bounded_by_max_len(run):
    source = run.source_vocab.encode("Who are you?")[None, :]
    assert GreedyDecoder(LSTMBuilder(run.config).inference(run.model))(source, 3).shape[1] <= 3
