import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from sequencer import builders
from sequencer.runs import load_run
from sequencer.search import BeamSearchDecoder, GreedyDecoder, SamplingDecoder, allowed_next
from sequencer.vocabulary import END_ID, PAD_ID, START_ID, Vocabulary

SENTENCES = ["Go.", "I am cold.", "Hello!", "Who are you?", "Run!", "We lost.", "Be nice.", "It's me."]


def step_by_step(model, source_ids, max_len, min_len=0):
    """The original example's greedy loop: the whole model on a growing prefix, one character per call."""
    ids = tf.TensorSpec([None, None], tf.int32)
    call = tf.function(lambda inputs: model(inputs, training=False), input_signature=[[ids, ids]])
    prefix = [START_ID]
    for _ in range(max_len):
        probabilities = call([source_ids[None, :], np.array([prefix], np.int32)])
        token = int(np.argmax(allowed_next(probabilities[0, -1:], len(prefix) - 1, min_len)[0]))
        prefix.append(token)
        if token == END_ID:
            break
    return prefix[1:]


def padded(vocab, sentences):
    encoded = [vocab.encode(sentence) for sentence in sentences]
    batch = np.zeros((len(encoded), max(map(len, encoded))), np.int32)
    for row, ids in enumerate(encoded):
        batch[row, : len(ids)] = ids
    return encoded, batch


@pytest.fixture(scope="module")
def run(trained_run):
    return load_run(trained_run)


MODELS = {
    "trained": {},
    "random": {"latent_dim": 16},
    "random-attention": {"latent_dim": 16, "model": "attention", "attention": "bahdanau", "num_layers": 2},
    "random-transformer": {"model": "transformer", "model_dim": 16, "num_heads": 2, "ffn_dim": 32, "num_layers": 2},
}


# The fast tier decodes with the trained and a random LSTM; attention and the Transformer are slow.
@pytest.fixture(
    scope="module",
    params=[name if name in ("trained", "random") else pytest.param(name, marks=pytest.mark.slow) for name in MODELS],
)
def model(request, run):
    """The trained model, or one with random weights.

    Random weights make outputs that vary from step to step and sentence to sentence, which a
    barely trained model does not: together they check the loops, the states and the padding. The
    attention model's decoder state also holds the encoder outputs, and the Transformer's its
    key/value caches, which beams must reorder.
    """
    if request.param == "trained":
        return run.model
    keras.utils.set_random_seed(3)
    config = run.config.replace(**MODELS[request.param])
    model = builders.get(config.model).create(config, len(run.source_vocab), len(run.target_vocab))
    model.build()
    return model


@pytest.mark.parametrize("min_len", [0, 5])
def test_batched_greedy_equals_step_by_step_decoding(run, model, min_len):
    max_len = 25
    encoded, batch = padded(run.source_vocab, SENTENCES)
    batched = GreedyDecoder(model)(batch, max_len, min_len)
    for ids, row, length in zip(encoded, batched.ids[:, 0], batched.lengths[:, 0]):
        reference = step_by_step(model, ids, max_len, min_len)
        assert list(row[: len(reference)]) == reference
        assert all(token == PAD_ID for token in row[len(reference) :])
        assert length == len(reference) >= min_len + 1  # the end marker counts in the length


def test_output_is_bounded_by_max_len(run):
    source = run.source_vocab.encode("Who are you?")[None, :]
    assert GreedyDecoder(run.model)(source, 3).ids.shape[2] <= 3


def test_beam_of_width_one_is_greedy(run, model):
    _, batch = padded(run.source_vocab, SENTENCES)
    greedy = GreedyDecoder(model)(batch, 20)
    beam = BeamSearchDecoder(model, 1, 0.6).beams(batch, 20)
    assert np.array_equal(beam.ids[:, 0, : greedy.ids.shape[2]], greedy.ids[:, 0])
    assert np.allclose(beam.log_probs, greedy.log_probs, atol=1e-4)


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_never_scores_worse_than_greedy(run, model, alpha):
    _, batch = padded(run.source_vocab, SENTENCES)
    greedy = GreedyDecoder(model)(batch, 20)
    beam = BeamSearchDecoder(model, 4, alpha)(batch, 20, n_best=3)
    assert (beam.scores(alpha)[:, 0] >= greedy.scores(alpha)[:, 0] - 1e-5).all()
    assert (np.diff(beam.scores(alpha), axis=1) <= 1e-6).all()  # best first
    assert all(len({tuple(ids) for ids in sentence}) == 3 for sentence in beam.ids)  # distinct


def test_every_n_best_count_is_the_same_trace_and_a_prefix_of_the_widest(run, model):
    _, batch = padded(run.source_vocab, SENTENCES)
    decoder = BeamSearchDecoder(model, 4, 0.6)
    found = {n_best: decoder(batch, 20, n_best=n_best) for n_best in (4, 1, 2)}
    assert decoder._decode.experimental_get_tracing_count() == 1  # a server's new n_best waits for no tracing
    for n_best in (1, 2):
        assert found[n_best].ids.shape[1] == n_best
        np.testing.assert_array_equal(found[n_best].ids, found[4].ids[:, :n_best])


@pytest.mark.parametrize("min_len", [0, 2])
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({}, id="lstm"),
        pytest.param({"model": "attention", "num_layers": "2"}, id="attention", marks=pytest.mark.slow),
        pytest.param(
            {"model": "transformer", "model_dim": "8", "num_heads": "2", "ffn_dim": "16", "num_layers": "2"},
            id="transformer",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_a_wide_enough_beam_finds_the_most_probable_output(tmp_path, settings, min_len):
    # Four ids can be output (end, unknown, x, y) over three steps: a beam of 4 * 4 keeps every
    # prefix of two steps, so its hypotheses must be the 16 most probable of all possible outputs
    # (those with at least `min_len` tokens before the end marker), which this test scores one by one.
    keras.utils.set_random_seed(5)
    source_vocab, target_vocab = Vocabulary.build(["ab"]), Vocabulary.build(["xy"])
    config = tiny_config(tmp_path, latent_dim="8", **settings)
    model = builders.get(config.model).create(config, len(source_vocab), len(target_vocab))
    source = source_vocab.encode("abba")[None, :]
    max_len, vocab_size = 3, len(target_vocab)

    def log_prob(sequence):
        state, token, total = model.encode(source, max_len), START_ID, 0.0
        for index, next_token in enumerate(sequence):
            probabilities, state = model.step(tf.constant([token]), state, index)
            total += float(np.log(probabilities[0, next_token]))
            token = next_token
        return total

    outputs = [token for token in range(vocab_size) if token not in (PAD_ID, START_ID)]  # what decoding may emit
    candidates = [
        sequence
        for length in range(1, max_len + 1)
        for sequence in itertools.product(outputs, repeat=length)
        if END_ID not in sequence[:-1] and (sequence[-1] == END_ID or length == max_len)
        if END_ID not in sequence[:min_len]
    ]
    width = len(outputs) ** 2
    best = sorted((log_prob(sequence) for sequence in candidates), reverse=True)[:width]
    beams = BeamSearchDecoder(model, width, 0.0).beams(source, max_len, min_len)
    assert beams.log_probs[0] == pytest.approx(best, abs=1e-4)


def prefixes(run, texts, width=None):
    """Target prefixes as the decoders take them: ids padded with PAD_ID."""
    encoded = [run.target_vocab.encode(text) for text in texts]
    matrix = np.zeros((len(encoded), width or max(1, *map(len, encoded))), np.int32)
    for row, ids in enumerate(encoded):
        matrix[row, : len(ids)] = ids
    return encoded, matrix


def test_every_decoder_keeps_a_forced_prefix_and_goes_on_from_it(run, model):
    _, batch = padded(run.source_vocab, SENTENCES)
    texts = ["Je ", "", "Il", "Qui", "Cou", "N", "S", "C'est"]
    encoded, prefix = prefixes(run, texts)
    outputs = {
        "greedy": GreedyDecoder(model)(batch, 20, 0, prefix).ids[:, 0],
        "beam": BeamSearchDecoder(model, 3, 0.6)(batch, 20, 0, 1, prefix).ids[:, 0],
        "sample": SamplingDecoder(model, 0.6)(batch, 20, 0, prefix, seed=3).ids[:, 0],
    }
    for name, ids in outputs.items():
        for row, forced_ids in zip(ids, encoded):
            assert list(row[: len(forced_ids)]) == list(forced_ids), name
    # Greedy after a prefix is the step-by-step greedy continuation of it.
    reference = step_by_step_after(model, batch[0], encoded[0], 20)
    assert list(outputs["greedy"][0][: len(reference)]) == reference


def step_by_step_after(model, source_ids, forced_ids, max_len):
    ids = tf.TensorSpec([None, None], tf.int32)
    call = tf.function(lambda inputs: model(inputs, training=False), input_signature=[[ids, ids]])
    source_ids = source_ids[source_ids != PAD_ID]
    prefix = [START_ID, *forced_ids]
    while len(prefix) <= max_len:
        probabilities = call([source_ids[None, :], np.array([prefix], np.int32)])
        token = int(np.argmax(allowed_next(probabilities[0, -1:], len(prefix) - 1, 0)[0]))
        prefix.append(token)
        if token == END_ID:
            break
    return prefix[1:]


def test_sampling_at_temperature_zero_or_top_k_one_is_greedy_and_a_seed_repeats_its_samples(run, model):
    _, batch = padded(run.source_vocab, SENTENCES)
    greedy = GreedyDecoder(model)(batch, 20)
    sampler = SamplingDecoder(model, 0.6)
    for settings in ({"temperature": 0.0}, {"top_k": 1}, {"top_p": 1e-6}):
        found = sampler(batch, 20, seed=5, **settings)
        np.testing.assert_array_equal(found.ids[:, 0], greedy.ids[:, 0])
        assert np.allclose(found.log_probs, greedy.log_probs, atol=1e-4)
    hot = {"temperature": 2.0, "samples": 4}
    first, again, other = (sampler(batch, 20, seed=seed, **hot) for seed in (7, 7, 8))
    np.testing.assert_array_equal(first.ids, again.ids)
    assert first.ids.shape[:2] == (len(SENTENCES), 4) and not np.array_equal(first.ids, other.ids)
    assert (np.diff(first.scores(0.6), axis=1) <= 1e-6).all()  # best first
    assert sampler._decode.experimental_get_tracing_count() == 1  # one trace for every setting


def test_top_k_draws_only_among_the_k_most_probable_tokens(run):
    model, max_len = run.model, 1
    source = run.source_vocab.encode("Who are you?")[None, :]
    probabilities = allowed_next(model.step(tf.constant([START_ID]), model.encode(source, max_len), 0)[0], 0, 1)[0]
    top3 = set(np.argsort(probabilities.numpy())[-3:].tolist())
    sampler = SamplingDecoder(model, 0.0)
    drawn = {int(sampler(source, max_len, 1, seed=seed, top_k=3, temperature=5.0).ids[0, 0, 0]) for seed in range(40)}
    assert drawn <= top3 and len(drawn) > 1
