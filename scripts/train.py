#!/usr/bin/env python3
"""Train a model on the pairs in train_dir in a new run folder under model_dir, or resume a run."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import command_line_flags, make_parser, run_script
from sequencer.config import KEYS_BY_NAME
from sequencer.errors import ConfigError

# A resumed run keeps the settings it was trained with (config.json in its folder); of those, only
# these may change (the last three are what population-based training varies between rounds).
# Flags of other sections (files, prediction) do not concern training.
RESUMABLE_FLAGS = (
    "epochs",
    "early_stopping_patience",
    "device",
    "distribution",
    "learning_rate",
    "dropout",
    "batch_size",
)
TRAINING_SECTIONS = ("Data", "Model", "Training")


def train(config, args):
    from sequencer import Preprocessor, Trainer, batchers, builders, runs

    if args.list:
        for heading, found in (("model=", builders.available()), ("batcher=", batchers.available())):
            print(heading)
            for name, description in found.items():
                print(f"  {name:12} {description}")
        return
    if args.resume is None:
        Trainer(config).train(Preprocessor(config).load())
        return
    run_dir = runs.find_run(config.model_dir, args.resume)
    saved, flags = runs.load_config(run_dir), command_line_flags(args)
    for name in flags:
        if name in RESUMABLE_FLAGS or KEYS_BY_NAME[name].section not in TRAINING_SECTIONS:
            continue
        if getattr(config, name) != getattr(saved, name):
            raise ConfigError(f"--{name} cannot change when resuming {run_dir}; only {', '.join(RESUMABLE_FLAGS)} can")
    config = runs.load_config(run_dir, {name: flags[name] for name in RESUMABLE_FLAGS if name in flags})
    Trainer(config).resume(run_dir, Preprocessor(config).load())


if __name__ == "__main__":
    parser = make_parser(__doc__)
    parser.add_argument("--list", action="store_true", help="list the model builders and batchers, and exit")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="RUN",
        help="continue a run from its last checkpoint (default: the newest run in model_dir)",
    )
    run_script(parser, train)
