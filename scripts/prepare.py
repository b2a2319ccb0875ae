#!/usr/bin/env python3
"""Prepare the training pairs of train_dir once: split, filter, encode and write them as shards in prepared_dir.

train.py prepares them itself when nothing prepared matches its settings; this script does it
ahead of time (for every worker of a cluster, or for a corpus too large to wait for at the start
of a run), and says what it prepared.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import Parser, keys_of, run_script

USES = ("train_dir", "model_dir", "prepared_dir", *keys_of("Data"), "init_from")  # init_from: that run's vocabularies


def prepare(config, args):
    from sequencer.preparation import Preprocessor

    corpus = Preprocessor(config).load()
    print(corpus.folder)


def parser():
    return Parser(__doc__, USES)


if __name__ == "__main__":
    run_script(parser(), prepare)
