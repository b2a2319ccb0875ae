"""What the scripts share: TensorFlow's start-up lines dropped, and nothing else; unread model flags warned of."""

import argparse
import logging
import os

import pytest

from sequencer.cli import native_log_lines_dropped, warn_of_unread_model_flags
from sequencer.config import load_config

# As TensorFlow 2.21 printed them on an AMD EPYC machine without a GPU, TF_CPP_MIN_LOG_LEVEL=3 set.
START_UP_LINES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796143352.810058   17101 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
    "I0000 00:00:1763998432.123456    4242 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "2026-01-01 12:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom operations are on.",
    # tensorflow-text's SentencePiece, loading a subword model (export.py, serve.py --export).
    "normalizer.cc(51) LOG(INFO) precompiled_charsmap is empty. use identity normalization.",
]


def write_to_descriptor_2(lines: list[str]) -> None:
    """As a C++ library writes: to the file descriptor itself, past Python's sys.stderr."""
    os.write(2, "".join(line + "\n" for line in lines).encode())


def test_native_start_up_lines_are_dropped_and_anything_else_passed_on(capfd):
    with native_log_lines_dropped():
        write_to_descriptor_2([START_UP_LINES[0], "a line of ours", *START_UP_LINES[1:]])
    assert capfd.readouterr().err == "a line of ours\n"


def test_a_failure_passes_on_every_line(capfd):
    with pytest.raises(ImportError), native_log_lines_dropped():
        write_to_descriptor_2(START_UP_LINES)
        raise ImportError("no tensorflow")
    assert capfd.readouterr().err.splitlines() == START_UP_LINES


def test_ctrl_c_is_no_failure_and_passes_on_no_log_line(capfd):
    with pytest.raises(KeyboardInterrupt), native_log_lines_dropped():
        write_to_descriptor_2([START_UP_LINES[0], "a line of ours"])
        raise KeyboardInterrupt
    assert capfd.readouterr().err == "a line of ours\n"


@pytest.mark.parametrize(
    "model, warned",
    [("lstm", ["num_heads", "positions"]), ("transformer", ["latent_dim"]), ("attention", ["num_heads", "positions"])],
)
def test_a_model_flag_the_chosen_model_does_not_read_is_a_warning(tmp_path, caplog, model, warned):
    flags = {"model": model, "latent_dim": "16", "num_layers": "1", "num_heads": "2", "positions": "learned"}
    config = load_config(None, flags, environ={})  # not the caller's SEQUENCER_ variables
    with caplog.at_level(logging.WARNING, logger="sequencer.cli"):
        warn_of_unread_model_flags(config, argparse.Namespace(epochs="2", **flags))
    assert caplog.messages == [f"--{name} is not a setting model={model} reads; it is ignored" for name in warned]
