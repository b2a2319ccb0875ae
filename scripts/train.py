#!/usr/bin/env python3
"""Train a model on the pairs in train_dir and save a run folder under model_dir."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import make_parser, run_script


def train(config, args):
    from sequencer import Preprocessor, Trainer

    corpus = Preprocessor(config).load()
    Trainer(config).train(corpus)


if __name__ == "__main__":
    run_script(make_parser(__doc__), train)
