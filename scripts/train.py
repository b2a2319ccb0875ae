#!/usr/bin/env python3
"""Train a model on the pairs in train_dir in a new run folder under model_dir, or resume a run.

With --init_from RUN the new run starts from a trained run's weights and vocabularies (fine-tuning
on new data), with a fresh optimizer and schedule unless --keep_optimizer."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import (
    TRAINING_KEYS,
    Parser,
    command_line_flags,
    import_tensorflow,
    run_script,
    warn_of_unread_model_flags,
)
from sequencer.config import KEYS
from sequencer.errors import ConfigError


def train(config, args):
    from sequencer import Preprocessor, batchers, builders, runs
    from sequencer.config import check_resume
    from sequencer.devices import check_accumulation, check_cluster

    if args.list:
        for heading, found in (("model=", builders.available()), ("batcher=", batchers.available())):
            print(heading)
            for name, description in found.items():
                print(f"  {name:12} {description}")
        return
    # Everything that can be checked without TensorFlow is checked before it starts.
    run_dir = None
    if args.resume is not None:  # config is the run's already (TrainParser.resolve)
        run_dir = args.resume_dir
        check_resume(runs.load_config(run_dir), config, run_dir)
    else:
        runs.check_new_run(config)
    if config.init_from and run_dir is None:
        import_tensorflow()  # the model's keys are its builder's, which imports Keras
        runs.check_init_from(config)
    check_cluster(config.distribution)
    check_accumulation(config.accumulate_steps, config.distribution)
    # Prepared once, found again by later runs and on resuming; a fine-tuned run resumes with the
    # vocabularies it holds, which are those of the run it started from.
    vocabularies = runs.load_vocabularies(run_dir) if run_dir is not None and config.init_from else None
    corpus = Preprocessor(config).load(vocabularies)
    if run_dir is not None:
        runs.check_corpus(run_dir, corpus, config.train_dir)
    import_tensorflow()
    warn_of_unread_model_flags(config, args)
    from sequencer.training import Trainer

    progress = "none" if args.quiet else "bar" if sys.stdout.isatty() else "lines"
    trainer = Trainer(config, progress=progress)
    if run_dir is None:
        trainer.train(corpus)
    else:
        trainer.resume(run_dir, corpus)


class TrainParser(Parser):
    def ignored_flags(self, args):
        """As for the other scripts, except --run with --resume: `resolve` refuses it."""
        ignored = super().ignored_flags(args)
        if args.resume is not None:
            ignored.pop("run", None)
        return ignored

    def resolve(self, config, args):
        """With --resume, the run's own configuration with the flags on top."""
        if args.resume is None:
            return config
        from sequencer import runs
        from sequencer.config import run_folder

        flags = command_line_flags(args)
        for name in ("run", "run_name"):  # the other scripts' choice of run, and a new run's name
            if name in flags:
                value = flags[name] or "RUN"
                raise ConfigError(
                    f"--{name} neither chooses nor renames the run --resume continues; "
                    f"to continue the run {value}, use --resume {value}"
                )
        named = args.resume and run_folder(args.resume, config.model_dir, Path.cwd())
        args.resume_dir = runs.find_run(config.model_dir, named)
        runs.check_resumable(args.resume_dir)
        return runs.load_config(args.resume_dir, command_line_flags(args))


def parser():
    parser = TrainParser(__doc__, TRAINING_KEYS)
    parser.add_argument("--list", action="store_true", help="list the model builders and batchers, and exit")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="",
        metavar="RUN",
        help="continue a run from its last checkpoint: its name in model_dir or its path (default: the newest run); "
        f"flags may change {', '.join(key.name for key in KEYS if key.resumable)}",
    )
    return parser


if __name__ == "__main__":
    run_script(parser(), train)
