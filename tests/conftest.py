"""Shared fixtures: the tiny config under tests/data and one model trained on it per session."""

import signal
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


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A run folder trained on the toy corpus with the tiny config."""
    from sequencer import Preprocessor, Trainer

    config = tiny_config(tmp_path_factory.mktemp("trained"))
    return Trainer(config).train(Preprocessor(config).load())
