#!/usr/bin/env python3
"""Population-based training on Ray Tune: train population_size members, save the best as a run in model_dir."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import make_parser, run_script


def tune(config, args):
    from sequencer.tuning import tune_population

    tune_population(config)


if __name__ == "__main__":
    run_script(make_parser(__doc__), tune)
