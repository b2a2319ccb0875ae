"""Shared fixtures: the tiny config under tests/data and one model trained on it per session."""

import signal
import sys
from pathlib import Path

import pytest

from sequencer.config import load_config

# A test run started in the background of a shell without job control (`pytest &`, `nohup ... &`)
# inherits Ctrl-C ignored, and so would the scripts it starts; the tests that press Ctrl-C in a
# script need it delivered, as it is to a script run in the foreground.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

DATA = Path(__file__).parent / "data"
TINY_CONFIG = DATA / "tiny_config.txt"


def run_folders(model_dir: Path) -> list[Path]:
    """The run folders in `model_dir` (which also holds `prepared/`, the prepared corpora)."""
    return sorted(path for path in model_dir.iterdir() if (path / "config.json").is_file())


def tiny_config(tmp_path: Path, **flags: str):
    """The tiny test config, writing under `tmp_path` and ignoring the caller's environment."""
    outputs = {"model_dir": str(tmp_path / "models"), "predict_out": str(tmp_path / "predicted")}
    return load_config(TINY_CONFIG, {**outputs, **flags}, environ={})


@pytest.fixture(autouse=True)
def float32_after_each_test():
    """Training in bfloat16 leaves Keras' global policy mixed_bfloat16 in the process, as it
    should for a training process; the next test starts from float32, as a fresh process would."""
    yield
    keras = sys.modules.get("keras")  # a test that never imported Keras changed no policy
    if keras is not None:
        keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run folder trained on the toy corpus with the tiny config."""
    from sequencer import Preprocessor, Trainer

    config = tiny_config(tmp_path_factory.mktemp("trained"))
    return Trainer(config).train(Preprocessor(config).load())


def untrained_transformer(folder: Path, level: str = "char", **flags: str):
    """A `Run` of a tiny Transformer built on the toy corpus's vocabularies but never trained:
    what the CTranslate2 tests convert in the fast tier (building takes a second, training ten)."""
    import keras

    from sequencer import builders
    from sequencer.data import read_pairs
    from sequencer.runs import Run
    from sequencer.vocabulary import SubwordVocabulary, Vocabulary

    settings = {"model_dim": "16", "num_heads": "2", "ffn_dim": "32", "num_layers": "2", "decoder_layers": "1"}
    config = tiny_config(folder, model="transformer", token_level=level, subword_vocab="400", **{**settings, **flags})
    pairs, _ = read_pairs(DATA / "train" / "toy.txt")
    if level == "subword":  # joint: one table for both sides
        source = target = SubwordVocabulary.train([side for pair in pairs for side in pair], 400, "unigram", "s.model")
    else:
        source, target = (Vocabulary.build([pair[side] for pair in pairs], level) for side in (0, 1))
    keras.utils.set_random_seed(1)
    model = builders.get("transformer").create(config, len(source), len(target))
    model.build()
    return Run(folder / f"transformer-{level}", model, source, target, config, {"max_target_len": 12})
