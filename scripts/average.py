#!/usr/bin/env python3
"""Average the weights of a run's last checkpoints; the average becomes model.keras if it scores better."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import DEVICE_KEYS, Parser, command_line_flags, import_tensorflow, run_script

USES = ("model_dir", "run", "average_last", *DEVICE_KEYS)
# The flags that apply on top of the run's own settings.
OVERRIDES = ("average_last", *DEVICE_KEYS)


def average(config, args):
    from sequencer import Preprocessor, averaging, runs
    from sequencer.config import run_folder
    from sequencer.errors import ConfigError

    named = args.run_arg and run_folder(args.run_arg, config.model_dir, Path.cwd())
    run_dir = runs.find_run(config.model_dir, named or config.run)
    overrides = {name: value for name, value in command_line_flags(args).items() if name in OVERRIDES}
    # The run's settings, these flags on top; on one device, as comparing two models on the
    # validation pairs needs no cluster and no GPUs (a run of distribution=multi_worker averages too).
    config = runs.load_config(run_dir, {**overrides, "distribution": "none"})
    problem = averaging.too_few_to_average(run_dir, config)
    if problem:
        raise ConfigError(problem)
    corpus = Preprocessor(config).load()  # for its validation pairs
    import_tensorflow()
    from sequencer import devices

    averaging.average_run(run_dir, config, corpus, devices.setup(config))


def parser():
    parser = Parser(__doc__, USES)
    parser.add_argument(
        "run_arg", nargs="?", default="", metavar="RUN", help="a run's name in model_dir, or a path (default: --run)"
    )
    return parser


if __name__ == "__main__":
    run_script(parser(), average)
