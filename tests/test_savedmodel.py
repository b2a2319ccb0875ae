"""The SavedModel export: text in, text out, in a process that knows nothing of this project."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config
from tensorflow.core.protobuf import saved_model_pb2

from sequencer import Predictor, Preprocessor, Trainer
from sequencer.errors import ConfigError
from sequencer.exports import EXPORT_FILE
from sequencer.runs import load_run
from sequencer.savedmodel import Tokens, _word_tokens, export
from sequencer.translation import EDGE_SPACE
from sequencer.vocabulary import SubwordVocabulary, tokenize_words

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["Hello!", "I am cold.", "", "Who are you? Ж🐞", "It's me, Tom.", "Run!"]

# A fresh interpreter with TensorFlow only (and tensorflow-text's ops for subwords): what
# TensorFlow Serving or another program would have.
LOAD_AND_TRANSLATE = """
import json, sys
import tensorflow as tf
if sys.argv[2] == "subword":
    import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
output = loaded.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[3])))
print(json.dumps({
    "sequencer": any(name.startswith("sequencer") for name in sys.modules),
    "translation": [row.decode() if isinstance(row, bytes) else [t.decode() for t in row]
                    for row in output["translation"].numpy()],
    "score": output["score"].numpy().tolist(),
}))
"""

# Trained with dropout: its layers' seeds are state the graph captures, and so must save.
RUNS = {
    "char": {"dropout": "0.2"},
    "word": {"model": "attention", "token_level": "word", "embedding_dim": "8", "dropout": "0.2"},
    "subword": {
        "model": "transformer",
        "token_level": "subword",
        "subword_vocab": "400",
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "optimizer": "adam",
    },
}


# The fast tier exports a character run; the word and subword runs (and their training) are slow.
@pytest.fixture(
    scope="module", params=[name if name == "char" else pytest.param(name, marks=pytest.mark.slow) for name in RUNS]
)
def run(request, tmp_path_factory):
    config = tiny_config(tmp_path_factory.mktemp(request.param), latent_dim="16", **RUNS[request.param])
    return load_run(Trainer(config, progress="none").train(Preprocessor(config).load()))


def in_predictor_order(run) -> list[str]:
    """SENTENCES ordered as Predictor orders them, by length in tokens, the empty one last.

    The export decodes its input as one batch in the order given; Predictor sorts by length.
    In the same order, both compute the same sums in the same order, and so give the same
    translations even from a barely trained model, whose probabilities are nearly ties.
    """
    ordered = sorted((s for s in SENTENCES if s), key=lambda sentence: len(run.source_vocab.encode(sentence)))
    return [*ordered, ""]


def exported(run, out_dir: Path, **settings) -> dict:
    """The export's translations of `in_predictor_order(run)`, from a fresh Python process."""
    export(run, run.config.replace(**settings), out_dir)
    level = run.source_vocab.level
    # Isolated (-I) and elsewhere: neither the repository nor PYTHONPATH is on its path.
    command = [sys.executable, "-I", "-c", LOAD_AND_TRANSLATE, str(out_dir), level, json.dumps(in_predictor_order(run))]
    result = subprocess.run(
        command, cwd=out_dir.parent, capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    assert result.returncode == 0, result.stderr[-2000:]
    output = json.loads(result.stdout.splitlines()[-1])
    assert output["sequencer"] is False
    return output


@pytest.mark.slow
def test_greedy_export_translates_as_the_predictor_does(run, tmp_path):
    output = exported(run, tmp_path / "greedy")
    expected = Predictor(run).hypotheses(in_predictor_order(run))
    assert output["translation"] == [scored[0][0] for scored in expected]
    assert output["score"] == pytest.approx([scored[0][1] for scored in expected], abs=1e-4)
    assert output["translation"][-1] == "" and output["score"][-1] == 0.0  # an empty sentence
    recorded = json.loads((tmp_path / "greedy" / EXPORT_FILE).read_text())
    assert recorded["beam_width"] == 1 and recorded["token_level"] == run.source_vocab.level


@pytest.mark.slow
def test_beam_export_gives_the_predictors_n_best(run, tmp_path):
    output = exported(run, tmp_path / "beam", beam_width=3, n_best=2)
    sentences = in_predictor_order(run)
    expected = Predictor(run, run.config.replace(beam_width=3, n_best=2)).hypotheses(sentences)
    for sentence, row, scores, scored in zip(sentences, output["translation"], output["score"], expected):
        if not sentence:
            assert row == ["", ""] and scores == [0.0, 0.0]
            continue
        assert row == [text for text, _ in scored]
        assert scores == pytest.approx([value for _, value in scored], abs=1e-4)
    assert json.loads((tmp_path / "beam" / EXPORT_FILE).read_text())["n_best"] == 2


def graph_ops(export_dir: Path) -> set[str]:
    """The op types of a SavedModel's graph and of every function in it."""
    saved = saved_model_pb2.SavedModel.FromString((export_dir / "saved_model.pb").read_bytes())
    graph = saved.meta_graphs[0].graph_def
    return {node.op for node in graph.node} | {
        node.op for function in graph.library.function for node in function.node_def
    }


def test_the_export_holds_core_tensorflow_ops_only(run, tmp_path):
    export(run, run.config.replace(beam_width=2), tmp_path / "out")  # beam search and the greedy hypothesis
    ops = graph_ops(tmp_path / "out")
    assert "TensorStridedSliceUpdate" in ops or run.config.model != "transformer"  # its caches
    assert not [op for op in ops if op.startswith("Xla")]  # XLA ops run only where XLA can compile them
    # Outside TensorFlow's own ops, only tensorflow-text's SentencePiece ops, of a subword export.
    assert {op for op in ops if not hasattr(tf.raw_ops, op) and not op.startswith("Sentencepiece")} == set()


@pytest.mark.slow
def test_saved_model_cli_lists_the_signature(run, tmp_path):
    if run.source_vocab.level != "char":
        pytest.skip("one run is enough")
    export(run, run.config, tmp_path / "out")
    cli = Path(sys.executable).parent / "saved_model_cli"
    shown = subprocess.run(
        [str(cli), "show", "--dir", str(tmp_path / "out"), "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "inputs['text'] tensor_info:" in shown.stdout and "dtype: DT_STRING" in shown.stdout
    assert "outputs['translation'] tensor_info:" in shown.stdout and "outputs['score'] tensor_info:" in shown.stdout


def test_an_export_is_not_overwritten_unless_forced(run, tmp_path):
    if run.source_vocab.level != "char":
        pytest.skip("one run is enough")
    out = tmp_path / "out"
    export(run, run.config, out)
    with pytest.raises(ConfigError, match="exists already"):
        export(run, run.config, out)
    export(run, run.config.replace(beam_width=2), out, force=True)
    assert json.loads((out / EXPORT_FILE).read_text())["beam_width"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # nothing left beside it
    # A link to an export is replaced by the new export; the export it named stays.
    (tmp_path / "current").symlink_to(out)
    export(run, run.config.replace(beam_width=3), tmp_path / "current", force=True)
    assert not (tmp_path / "current").is_symlink()
    assert json.loads((tmp_path / "current" / EXPORT_FILE).read_text())["beam_width"] == 3
    assert json.loads((out / EXPORT_FILE).read_text())["beam_width"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["current", "out"]
    (tmp_path / "empty").mkdir()  # nothing to lose: no --force needed
    export(run, run.config, tmp_path / "empty")
    assert (tmp_path / "empty" / "saved_model.pb").is_file()
    shutil.rmtree(tmp_path / "empty")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists already"):
        export(run, run.config, tmp_path / "mine")
    with pytest.raises(ConfigError, match="not an export"):
        export(run, run.config, tmp_path / "mine", force=True)
    # A folder of the user's that merely holds an export.json is no export either, and stays whole.
    (tmp_path / "mine" / EXPORT_FILE).write_text((out / EXPORT_FILE).read_text())
    with pytest.raises(ConfigError, match=r"has no saved_model\.pb; --force replaces an export only, so .* stays"):
        export(run, run.config, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"folder .*a-file is a file, not a folder; --force replaces an export"):
        export(run, run.config, tmp_path / "a-file", force=True)
    assert (tmp_path / "a-file").is_file()
    with pytest.raises(ConfigError, match=r"cannot make the export folder .*: .*a-file is a file, not a folder"):
        export(run, run.config, tmp_path / "a-file" / "en-fr")


def test_word_tokens_in_the_graph_are_the_python_tokens_on_the_shipped_corpus():
    with open(ROOT / "training_files" / "fra.txt", encoding="utf-8") as stream:
        sentences = [side.strip() for line in stream for side in line.split("\t")[:2]]
    sentences += ["  two  spaces ", "a\u202f!", "l'été — «oui»", "x_y 3.5 ½", "", "Ж🐞?!", "a\x1fb", "\x1f"]
    tokens = _word_tokens(tf.constant(sentences)).to_list()
    mismatches = [s for s, graph in zip(sentences, tokens) if [t.decode() for t in graph] != tokenize_words(s)]
    assert mismatches == []


def test_subword_ids_in_the_graph_decode_to_the_python_text(tmp_path):
    """Any ids a model may output, leading word markers ("▁", "▁", "▁a") and byte pieces included,
    but for the spaces at either end, which a translation loses in both (the spaces that leading
    markers decode to differ: Python's SentencePiece gives n - 1 for n markers, tensorflow-text's none)."""
    with open(ROOT / "training_files" / "fra.txt", encoding="utf-8") as stream:
        texts = [side for line in list(stream)[:3000] for side in line.rstrip("\n").split("\t")[:2]]
    vocab = SubwordVocabulary.train(texts, 400, "unigram", "subwords.model")
    piece = vocab.processor.piece_to_id
    crafted = [
        ["▁", "▁", "▁a"],
        ["▁", "▁", "▁"],
        ["▁", "▁"],
        ["▁", "▁", "<0x20>", "▁a"],
        ["<0x20>", "a"],
        ["a", "▁", "▁"],
        ["▁", "<0xC3>"],
    ]
    sequences = [[piece(name) for name in names] for names in crafted]
    drawn = np.random.default_rng(0)
    sequences += [drawn.integers(3, len(vocab.processor), drawn.integers(0, 9)).tolist() for _ in range(2000)]
    width = max(len(ids) for ids in sequences)
    padded = tf.constant([ids + [0] * (width - len(ids)) for ids in sequences], tf.int32)  # PAD_ID
    graph = [text.decode() for text in Tokens(vocab, "target", tmp_path).decode(padded).numpy()]
    strip = EDGE_SPACE
    assert [
        (ids, text) for ids, text in zip(sequences, graph) if text.strip(strip) != vocab.decode(ids).strip(strip)
    ] == []
