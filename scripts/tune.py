#!/usr/bin/env python3
"""Population-based training on Ray Tune: train population_size members, save the best as a run in model_dir."""

import importlib.util
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import TRAINING_KEYS, Parser, import_tensorflow, keys_of, run_script, warn_of_unread_model_flags


def tune(config, args):
    from sequencer import Preprocessor
    from sequencer.devices import check_accumulation
    from sequencer.errors import ConfigError
    from sequencer.runs import check_new_run

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "tune.py needs Ray Tune, which requirements.txt leaves out: pip install -r requirements-dev.txt"
        )
    check_accumulation(config.accumulate_steps, config.distribution)  # what each member would stop at
    check_new_run(config)  # where the population's folders and the best member's run go
    corpus = Preprocessor(config).load()  # checked before TensorFlow starts
    import_tensorflow()
    warn_of_unread_model_flags(config, args)
    if not config.ray_address:  # Ray's default for a local cluster, chosen before Ray loads, which it would announce
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    from sequencer.tuning import tune_population

    tune_population(config, corpus)


def parser():
    return Parser(__doc__, (*TRAINING_KEYS, *keys_of("Tuning")))


if __name__ == "__main__":
    run_script(parser(), tune)
