import keras
import numpy as np
import pytest
from conftest import tiny_config

from sequencer import builders
from sequencer.builders.lstm import LSTMSeq2Seq
from sequencer.layers import OneHot
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


# Each builder with its defaults, and with the options that change its graph.
SETTINGS = {
    "lstm": {},
    "lstm-stacked": {"num_layers": "2", "embedding_dim": "6", "dropout": "0.2"},
    "attention-luong": {"model": "attention"},
    "attention-bahdanau-stacked": {
        "model": "attention",
        "attention": "bahdanau",
        "num_layers": "2",
        "embedding_dim": "6",
    },
    "transformer": {"model": "transformer", "model_dim": "8", "num_heads": "2", "ffn_dim": "16"},
    "transformer-learned-shared-stacked": {
        "model": "transformer",
        "model_dim": "8",
        "num_heads": "2",
        "ffn_dim": "16",
        "num_layers": "2",
        "positions": "learned",
        "token_level": "subword",
        "dropout": "0.1",
    },
    "transformer-shallow-decoder": {
        "model": "transformer",
        "model_dim": "8",
        "num_heads": "2",
        "ffn_dim": "16",
        "num_layers": "2",
        "decoder_layers": "1",
    },
}


# The fast tier builds each builder with its defaults; the variants are slow.
BUILDS = [
    name if name in ("lstm", "attention-luong", "transformer") else pytest.param(name, marks=pytest.mark.slow)
    for name in SETTINGS
]


@pytest.fixture(params=BUILDS)
def model(request, tmp_path):
    config = tiny_config(tmp_path, latent_dim="8", **SETTINGS[request.param])
    keras.utils.set_random_seed(0)
    model = builders.get(config.model).create(config, 10, 10)
    model.build()
    model.compile("rmsprop", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_padding_counts_neither_in_loss_nor_in_accuracy(model):
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


def test_decoding_steps_reproduce_the_training_graph(model):
    # Step by step (with the Transformer's key/value caches) equals the whole sequence at once.
    (source_ids, decoder_input), _ = batch(5)
    state = model.encode(source_ids, max_len=5)
    expected = model.predict([source_ids, decoder_input], verbose=0)
    for t in range(4):
        probabilities, state = model.step(decoder_input[:, t], state, t)
        real = decoder_input[:, t] != 0  # what a padding position gives does not matter
        assert np.allclose(np.asarray(probabilities)[real], expected[real, t], atol=1e-5)


def test_decoding_steps_stay_exact_as_the_transformer_cache_grows(model):
    # 40 positions: the Transformer's self-attention cache starts with room for INITIAL_CACHE (8) and doubles.
    rng = np.random.default_rng(0)
    source_ids = rng.integers(4, 10, size=(2, 7)).astype("int32")
    decoder_input = np.concatenate([np.full((2, 1), START_ID), rng.integers(4, 10, size=(2, 39))], 1).astype("int32")
    expected = model.predict([source_ids, decoder_input], verbose=0)
    state = model.encode(source_ids, max_len=40)
    for t in range(40):
        probabilities, state = model.step(decoder_input[:, t], state, t)
        assert np.allclose(np.asarray(probabilities), expected[:, t], atol=1e-5), f"position {t}"


def test_saved_model_loads_safely_and_predicts_the_same(model, tmp_path):
    inputs, _ = batch(5)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert np.allclose(loaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-6)


def test_lstm_layers_keep_cudnn_eligible_settings(model):
    # TensorFlow runs an LSTM on cuDNN only with these settings (keras.layers.LSTM documentation).
    if model.name.startswith("transformer"):
        pytest.skip("the Transformer has no LSTM")
    lstms = [layer for layer in model.layers if isinstance(layer, keras.layers.LSTM)]
    lstms += [
        part
        for layer in model.layers
        if isinstance(layer, keras.layers.Bidirectional)
        for part in (layer.forward_layer, layer.backward_layer)
    ]
    assert len(lstms) >= 2
    for layer in lstms:
        assert layer.activation.__name__ == "tanh"
        assert layer.recurrent_activation.__name__ == "sigmoid"
        assert layer.recurrent_dropout == 0 and not layer.unroll and layer.use_bias


def test_one_hot_masks_padding_and_round_trips_its_config():
    layer = OneHot(5, name="one_hot")
    ids = np.array([[1, 4, 0]])
    assert np.array_equal(np.asarray(layer(ids))[0].argmax(-1), [1, 4, 0])
    assert np.array_equal(np.asarray(layer.compute_mask(ids)), [[True, True, False]])
    again = OneHot.from_config(layer.get_config())
    assert again.depth == 5 and again.name == "one_hot"


def test_models_are_discovered_from_their_files():
    assert builders.available()["lstm"].startswith("The Keras example's LSTM encoder-decoder")
    assert builders.get("lstm") is LSTMSeq2Seq
    assert builders.available()["attention"].startswith("Bidirectional LSTM encoder")
    assert builders.available()["transformer"].startswith("The Transformer")


def test_the_transformer_ties_its_embeddings(tmp_path):
    shared = tiny_config(tmp_path, model="transformer", model_dim="8", num_heads="2", token_level="subword")
    separate = shared.replace(joint_vocab=False)
    model = builders.get("transformer").create(shared, 10, 10)
    model.build()
    names = [weight.path for weight in model.weights]
    assert sum("embedding" in name for name in names) == 1  # one table: source, target and output projection
    model = builders.get("transformer").create(separate, 10, 12)
    model.build()
    assert sum("embedding" in weight.path for weight in model.weights) == 2  # the output projection is the target's
    assert model([np.ones((1, 3)), np.ones((1, 2))]).shape == (1, 2, 12)


def test_the_transformer_decoder_has_its_own_depth(tmp_path):
    sizes = {"model_dim": "8", "num_heads": "2", "num_layers": "3", "decoder_layers": "1"}
    config = tiny_config(tmp_path, model="transformer", **sizes)
    model = builders.get("transformer").create(config, 10, 10)
    assert (len(model.encoder_layers), len(model.decoder_layers)) == (3, 1)
    # A run saved before decoder_layers existed has as many decoder layers as encoder layers.
    saved = {key: value for key, value in model.get_config().items() if key != "decoder_layers"}
    assert len(type(model).from_config(saved).decoder_layers) == 3


def test_decoding_caches_are_written_with_core_tensorflow_ops():
    """Pins builders/transformer.py's one use of a private Keras module (Keras 3.15's TensorFlow backend)."""
    import tensorflow as tf

    from sequencer.builders.transformer import core_slice_update

    @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32)])
    def update(cache):
        with core_slice_update():
            return keras.ops.slice_update(cache, [0, 1], tf.ones((2, 1)))

    graph = update.get_concrete_function().graph
    ops = {operation.type for operation in graph.get_operations()}
    assert "TensorStridedSliceUpdate" in ops and not [op for op in ops if op.startswith("Xla")]
    assert update(tf.zeros((2, 3))).numpy().tolist() == [[0, 1, 0], [0, 1, 0]]
