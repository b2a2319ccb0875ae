"""The CTranslate2 export: the conversion computes what the Keras model computes, and translates as the run does.

The fast tier converts untrained models (built in a second); the trained ones, the scripts end
to end and int8 are slow.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import ctranslate2
import keras
import numpy as np
import pytest
from conftest import DATA, TINY_CONFIG, tiny_config, untrained_transformer

from sequencer import Predictor, Preprocessor, Trainer
from sequencer.ctranslate import attention_parts, convert, ctranslate2_tokens, layer_parts
from sequencer.data import pad_ids, read_pairs
from sequencer.errors import ConfigError, DataError
from sequencer.exports import EXPORT_FILE, check_convertible, open_export, read_export
from sequencer.runs import load_run
from sequencer.translation import Sampling, Translator
from sequencer.vocabulary import END_ID, PAD_ID, START_ID

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [source for source, _ in read_pairs(DATA / "train" / "toy.txt")[0][::5]]  # 60 pairs, some sources twice
# Two layouts: characters (a table per side), sinusoids, 2 encoder and 1 decoder layers; joint
# subwords (one table), learned positions, 1 encoder and 2 decoder layers.
LAYOUTS = {
    "char-sinusoidal": ("char", {}),
    "subword-learned": ("subword", {"positions": "learned", "num_layers": "1", "decoder_layers": "2"}),
}


@pytest.fixture(scope="module", params=list(LAYOUTS))
def layouts(request, tmp_path_factory):
    """Each layout's untrained run, and its conversion."""
    level, flags = LAYOUTS[request.param]
    run = untrained_transformer(tmp_path_factory.mktemp(request.param), level, **flags)
    return run, convert(run, run.path.parent / "ct2")


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """The untrained character run, and its conversion: for the tests that need one model only."""
    run = untrained_transformer(tmp_path_factory.mktemp("char"), "char")
    return run, convert(run, run.path.parent / "ct2")


def keras_probabilities(model, source_ids, outputs):
    """Teacher-forced next-token probabilities (B, T, V) of output id sequences (decoder input: <s> + output[:-1])."""
    inputs = [np.array([START_ID, *ids[:-1]], np.int32) for ids in outputs]
    return np.asarray(model([pad_ids(source_ids), pad_ids(inputs)], training=False))


def test_the_keras_hub_private_names_the_converter_reads_are_there():
    """sequencer/ctranslate.py reads keras-hub 0.32's and Keras 3.15's private sublayer attributes
    (`layer_parts`, `attention_parts`): a release that renames them must fail here, not in a user's export."""
    import keras_hub

    run = untrained_transformer(Path("unused"), "char")
    model, d, ffn = run.model, 16, 32
    for layer in [*model.encoder_layers, *model.decoder_layers]:
        parts = layer_parts(layer)
        decoder = layer in model.decoder_layers
        attentions = [parts.self_attention] + ([parts.cross_attention] if decoder else [])
        assert (parts.cross_attention is not None) is decoder, keras_hub.__version__
        for attention in attentions:
            query, key, value, output = attention_parts(attention)
            assert [dense.kernel.shape for dense in (query, key, value)] == [(d, 2, d // 2)] * 3
            assert output.kernel.shape == (2, d // 2, d)
        norms = [parts.self_attention_norm, parts.feedforward_norm] + ([parts.cross_attention_norm] if decoder else [])
        assert all(isinstance(norm, keras.layers.LayerNormalization) for norm in norms)
        assert parts.feedforward_in.kernel.shape == (d, ffn) and parts.feedforward_out.kernel.shape == (ffn, d)


def test_the_conversion_gives_the_keras_model_s_log_probabilities(layouts):
    run, folder = layouts
    pairs = read_pairs(DATA / "train" / "toy.txt")[0][::20]
    source_ids = [run.source_vocab.encode(source) for source, _ in pairs]
    outputs = [np.array([*run.target_vocab.encode(target), END_ID], np.int32) for _, target in pairs]
    probabilities = keras_probabilities(run.model, source_ids, outputs)
    tokens = ctranslate2_tokens(run.source_vocab), ctranslate2_tokens(run.target_vocab)
    scored = ctranslate2.Translator(str(folder), intra_threads=1).score_batch(
        [[tokens[0][i] for i in ids] for ids in source_ids], [[tokens[1][i] for i in ids[:-1]] for ids in outputs]
    )
    for row, ids, result in zip(probabilities, outputs, scored):
        assert result.tokens[-1] == "</s>"
        expected = np.log(row[np.arange(len(ids)), ids])
        np.testing.assert_allclose(result.log_probs, expected, atol=1e-4)


def test_scores_are_the_log_probabilities_renormalised_over_what_may_be_emitted(layouts):
    """CTranslate2 masks <pad>, <s> and an early </s> before its softmax; the TensorFlow search
    zeroes them after it. Same outputs, but CTranslate2's scores are those of the renormalised
    distribution: higher by the mass of what was banned (for this untrained model up to a few
    tenths; about 0.01 for a trained one). The translator reports them as they are."""
    run, folder = layouts
    source_ids = [run.source_vocab.encode(source) for source in SOURCES[:12]]
    tokens = ctranslate2_tokens(run.source_vocab), ctranslate2_tokens(run.target_vocab)
    results = ctranslate2.Translator(str(folder), intra_threads=1).translate_batch(
        [[tokens[0][i] for i in ids] for ids in source_ids],
        beam_size=1,
        max_decoding_length=12,
        min_decoding_length=2,
        length_penalty=0,
        return_scores=True,
        return_end_token=True,
        suppress_sequences=[["<pad>"], ["<s>"]],
    )
    outputs = [[tokens[1].index(token) for token in result.hypotheses[0]] for result in results]
    probabilities = keras_probabilities(run.model, source_ids, outputs).astype(np.float64)
    for row, ids, result in zip(probabilities, outputs, results):
        steps = np.arange(len(ids))
        banned = row[:, [PAD_ID, START_ID]].sum(axis=1) + np.where(steps < 2, row[:, END_ID], 0.0)[: len(row)]
        raw = np.log(row[steps, ids])
        assert result.scores[0] == pytest.approx((raw - np.log1p(-banned[: len(ids)])).sum(), abs=2e-4)
        assert result.scores[0] >= raw.sum()
    config = run.config.replace(length_penalty=0.0, max_output_len=12, min_output_len=2, decode_batch_size=12)
    found = open_export(folder, config).translate(SOURCES[:12])
    by_length = sorted(range(12), key=lambda i: len(source_ids[i]))  # as the translator batches them
    assert [found.hypotheses[i][0][1] for i in by_length] == pytest.approx(
        [results[i].scores[0] for i in by_length], abs=1e-4
    )


def test_an_export_scores_pairs_as_the_run_does(layouts):
    run, folder = layouts
    pairs = read_pairs(DATA / "train" / "toy.txt")[0][::15]
    config = run.config.replace(max_output_len=20, decode_batch_size=7)
    exported, own = open_export(folder, config).score(pairs), Translator(run, config).score(pairs)
    assert [pair.tokens for pair in exported.pairs] == [pair.tokens for pair in own.pairs]
    assert [pair.total for pair in exported.pairs] == pytest.approx([pair.total for pair in own.pairs], abs=1e-3)
    assert exported.unknown_tokens == own.unknown_tokens


def test_an_export_starts_translations_with_their_prefixes_and_samples_reproducibly(layouts):
    run, folder = layouts
    translator = open_export(folder, run.config.replace(max_output_len=12))
    prefixes = ["Je suis", "", "Qui", "Nous"]
    for how in ({}, {"beam_width": 3, "n_best": 2}, {"decoding": "sample", "n_best": 3}):
        found = translator.translate(SOURCES[:4], prefixes=prefixes, **how)
        for prefix, hypotheses in zip(prefixes, found.hypotheses):
            assert all(text.startswith(prefix) for text, _ in hypotheses), (how, prefix, hypotheses)
    sampled = [translator.translate(SOURCES[:6], decoding="sample", n_best=3, sampling=Sampling(seed=5)) for _ in "ab"]
    assert sampled[0].hypotheses == sampled[1].hypotheses
    greedy = translator.translate(SOURCES[:6]).best
    assert translator.translate(SOURCES[:6], decoding="sample", sampling=Sampling(top_k=1)).best == greedy
    extreme = Sampling(temperature=1e-40, top_k=10**9, top_p=1e-300)  # CTranslate2 refuses or overflows these
    assert translator.translate(SOURCES[:6], decoding="sample", sampling=extreme).best == greedy
    assert [pair.tokens for pair in translator.score(zip(SOURCES[:2], greedy[:2])).pairs] == [
        pair.tokens
        for pair in Translator(run, run.config.replace(max_output_len=12)).score(zip(SOURCES[:2], greedy[:2])).pairs
    ]  # an iterator of pairs is read once


def test_the_export_folder_and_its_replacement(untrained, tmp_path):
    run, folder = untrained
    names = {path.name for path in folder.iterdir()}
    assert {"model.bin", "config.json", EXPORT_FILE, "vocab.json"} <= names
    assert (run.source_vocab.level != "subword") or "s.model" in names  # the SentencePiece model, to tokenise
    description = read_export(folder)
    assert description["format"] == "ctranslate2" and description["quantization"] == "float32"
    assert description["run"] == run.path.name and description["max_positions"] == 1024
    out = tmp_path / "export"
    convert(run, out)
    with pytest.raises(ConfigError, match="exists already"):
        convert(run, out, "int8")
    convert(run, out, "int8", force=True)
    assert read_export(out)["quantization"] == "int8" and sorted(path.name for path in tmp_path.iterdir()) == ["export"]


def test_a_damaged_or_foreign_folder_is_a_data_error(untrained, tmp_path):
    run, folder = untrained
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    (damaged / "model.bin").write_bytes((folder / "model.bin").read_bytes()[:1000])  # cut short
    with pytest.raises(DataError, match=f'^{damaged}: CTranslate2 cannot translate "Hello." with it \\(RuntimeError: '):
        open_export(damaged, run.config)
    (damaged / "model.bin").unlink()
    with pytest.raises(DataError, match=r"is not an export of scripts/export\.py: it has no model\.bin"):
        open_export(damaged, run.config)
    foreign = tmp_path / "foreign"  # CTranslate2's own converters write no export.json
    shutil.copytree(folder, foreign, ignore=shutil.ignore_patterns(EXPORT_FILE))
    with pytest.raises(DataError, match=r"is not an export of scripts/export\.py: it has no export\.json"):
        read_export(foreign)


def test_the_lstm_and_attention_models_are_refused_with_the_formats_they_can_use(trained_run, tmp_path):
    for model in ("lstm", "attention"):
        with pytest.raises(ConfigError) as caught:
            check_convertible("ctranslate2", model, Path("models/run"))
        assert str(caught.value) == (
            f"run is a model={model} run, which --format ctranslate2 cannot express (it converts "
            "model=transformer only); export it with --format savedmodel"
        )
    check_convertible("savedmodel", "lstm", Path("run"))
    with pytest.raises(ConfigError, match="--format ctranslate2 cannot express"):
        convert(load_run(trained_run), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def script(name, *args, cwd, stdin=None):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    command = [sys.executable, str(ROOT / "scripts" / name), "--config", str(TINY_CONFIG), *args]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300, env=environment)


# predict.py as run, and afterwards whether TensorFlow (or Keras) was ever imported.
WITHOUT_TENSORFLOW = """
import atexit, runpy, sys
atexit.register(lambda: print(any(name in sys.modules for name in ("tensorflow", "keras")), file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_predict_with_a_ctranslate2_export_never_imports_tensorflow(untrained, tmp_path):
    _, folder = untrained
    command = [sys.executable, "-c", WITHOUT_TENSORFLOW, str(ROOT / "scripts" / "predict.py")]
    command += ["--config", str(TINY_CONFIG), "--export", str(folder), "--max_output_len", "12", "-"]
    sentences = ["Hello!", "", "I am cold."]
    result = subprocess.run(command, cwd=tmp_path, input="\n".join(sentences) + "\n", capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "False", result.stderr
    expected = open_export(folder, load_config_for_prediction(max_output_len=12)).translate(sentences).best
    assert result.stdout.splitlines() == expected
    assert f"translating with the export {folder}" in result.stderr


def load_config_for_prediction(**flags):
    from sequencer.config import load_config

    return load_config(TINY_CONFIG, {key: str(value) for key, value in flags.items()}, environ={})


def test_scripts_refuse_what_ctranslate2_cannot_do_in_one_line_before_tensorflow(untrained, trained_run, tmp_path):
    _, folder = untrained
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    (damaged / "model.bin").write_bytes(b"not a model")
    cases = [
        ("predict.py", ["--export", str(damaged), "-"], f'error: {damaged}: CTranslate2 cannot translate "Hello."'),
        ("export.py", ["--run", str(trained_run), "--format", "ctranslate2", "out"], f"error: {trained_run.name} is"),
        ("export.py", ["--run", str(trained_run), "--quantization", "int8", "out"], "error: --quantization applies to"),
        ("evaluate.py", ["--export", str(folder)], "error: an export has no held-out test pairs; name test files"),
    ]
    for name, args, message in cases:
        result = script(name, *args, cwd=tmp_path, stdin="Hello!\n")
        assert result.returncode == 2 and result.stderr.startswith(message), (name, result.stderr)
        assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ---- trained models: the same translations as the TensorFlow search (slow)

# The tests' TRANSFORMER, trained long enough (20 epochs, ~30 s) to say more than one repeated piece.
TRAINED = {
    "model": "transformer",
    "token_level": "subword",
    "subword_vocab": "400",
    "model_dim": "32",
    "num_heads": "4",
    "ffn_dim": "64",
    "num_layers": "2",
    "decoder_layers": "1",
    "dropout": "0.1",
    "optimizer": "adam",
    "learning_rate": "0.003",
    "lr_schedule": "inverse_sqrt",
    "warmup_steps": "20",
    "epochs": "20",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    config = tiny_config(folder, **TRAINED)
    run = load_run(Trainer(config, progress="none").train(Preprocessor(config).load()))
    return run, {kind: convert(run, folder / kind, kind) for kind in ("float32", "int8")}


def both(run, folder, **settings):
    """The TensorFlow search's translations of SOURCES and the CTranslate2 export's, with the same settings."""
    config = run.config.replace(**settings)
    return Translator(run, config).translate(SOURCES), open_export(folder, config).translate(SOURCES)


@pytest.mark.slow
def test_greedy_float32_translations_are_the_tensorflow_models(trained):
    run, folders = trained
    expected, found = both(run, folders["float32"])
    assert found.best == expected.best
    assert found.at_length_limit == expected.at_length_limit > 0  # this model still repeats itself at times
    # CTranslate2's scores are renormalised over what may be emitted (see the test above): a little higher.
    differences = [mine[0][1] - theirs[0][1] for mine, theirs in zip(found.hypotheses, expected.hypotheses)]
    assert min(differences) >= 0 and max(differences) < 0.05


@pytest.mark.slow
def test_beam_search_ranks_by_gnmt_s_length_penalty_as_the_tensorflow_search_does(trained):
    """Beam 4, alpha 0.6, two best: the same best translation for every sentence. The second may
    differ where the searches prune differently (CTranslate2 by log-probability, TensorFlow by
    penalised score): both lists are then valid n-best lists of their search."""
    run, folders = trained
    expected, found = both(run, folders["float32"], beam_width=4, n_best=2, length_penalty=0.6)
    assert found.best == expected.best
    assert all(len(hypotheses) == 2 for hypotheses in found.hypotheses)
    lists = [[[text for text, _ in hypotheses] for hypotheses in got.hypotheses] for got in (found, expected)]
    assert sum(a == b for a, b in zip(*lists)) >= 0.8 * len(SOURCES)


@pytest.mark.slow
def test_int8_translates_mostly_alike(trained):
    """int8 weights (per row, symmetric) move the log-probabilities of so narrow a model (d=32) by
    up to about 0.1: most translations stay, a few differ by a piece or two."""
    run, folders = trained
    expected, found = both(run, folders["int8"])
    assert read_export(folders["int8"])["quantization"] == "int8"
    assert sum(a == b for a, b in zip(found.best, expected.best)) >= 0.6 * len(SOURCES)


@pytest.mark.slow
def test_a_run_trained_in_bfloat16_exports_in_both_formats_and_translates_as_predict_does(tmp_path):
    from sequencer.savedmodel import export

    config = tiny_config(tmp_path, **{**TRAINED, "epochs": "3", "mixed_precision": "bfloat16"})
    run = load_run(Trainer(config, progress="none").train(Preprocessor(config).load()))
    assert {layer.compute_dtype for layer in run.model._flatten_layers()} == {"float32"}
    expected = Predictor(run).hypotheses(SOURCES[:10])
    for folder in (export(run, run.config, tmp_path / "savedmodel"), convert(run, tmp_path / "ct2")):
        found = open_export(folder, run.config).translate(SOURCES[:10]).hypotheses
        assert [h[0][0] for h in found] == [h[0][0] for h in expected], folder.name
        assert [h[0][1] for h in found] == pytest.approx([h[0][1] for h in expected], abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("export_format", ["ctranslate2", "savedmodel"])
def test_export_then_predict_and_evaluate_with_it(trained, tmp_path, export_format):
    run, _ = trained
    exported = script("export.py", "--run", str(run.path), "--format", export_format, "out", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stderr.splitlines()[-1] == f"exported {run.path.name} to {tmp_path / 'out'} ({export_format})"
    (tmp_path / "in").mkdir()
    test_file = tmp_path / "in" / "test.txt"
    test_file.write_text((DATA / "train" / "toy.txt").read_text(encoding="utf-8").splitlines()[0] + "\n")
    predicted = script("predict.py", "--export", "out", "--predict_in", "in", "--predict_out", "pred", cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    source = test_file.read_text().split("\t")[0]
    expected = Predictor(run, run.config.replace(decode_batch_size=16)).translate([source])
    assert (tmp_path / "pred" / "test.txt").read_text(encoding="utf-8") == expected[0] + "\n"
    evaluated = script("evaluate.py", "--export", "out", str(test_file), cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert f"| {test_file} |" in evaluated.stdout and "saved in" not in evaluated.stdout
    recorded = json.loads((run.path / "eval.json").read_text()) if (run.path / "eval.json").exists() else {}
    assert str(test_file) not in recorded  # an export has no run folder to record in
