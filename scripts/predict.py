#!/usr/bin/env python3
"""Translate every *.txt file in predict_in into predict_out, or standard input with `-`.

With --prefix, each translation starts with a given prefix (the line of the same number in a
prefix file) and goes on from it; with --decoding sample, translations are drawn rather than searched.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import (
    DEVICE_KEYS,
    TranslatingParser,
    chosen_export,
    import_tensorflow,
    keys_of,
    native_log_lines_dropped,
    run_script,
)

USES = ("model_dir", "run", "predict_in", "predict_out", *DEVICE_KEYS, *keys_of("Prediction"), "seed")


def predict(config, args):
    from sequencer.data import translation_inputs
    from sequencer.errors import ConfigError, DataError
    from sequencer.prediction import prefix_files_for
    from sequencer.runs import find_trained_run

    if args.stdin not in (None, "-"):
        raise ConfigError(
            f"predict.py takes no file names, only - for standard input: to translate {args.stdin}, "
            f"run predict.py - < {args.stdin}, or put it in a folder and set predict_in"
        )
    # Checked before TensorFlow starts: the run or export, and the folders.
    export = chosen_export(args)
    run_dir = None if export else find_trained_run(config.model_dir, config.run)
    if args.stdin:
        if args.prefix and not args.prefix.is_file():
            raise DataError(f"prefix file {args.prefix} (--prefix) is not a file; standard input takes one")
    else:
        prefix_files_for(translation_inputs(config.predict_in, config.predict_out), args.prefix)
    if not export or export[1]["format"] == "savedmodel":
        import_tensorflow()  # a CTranslate2 export needs none, and starts in a fraction of the time
    from sequencer.prediction import Predictor

    if export:
        with native_log_lines_dropped():  # what SentencePiece logs as tensorflow-text loads a subword export
            predictor = Predictor.from_export(export[0], config)
    else:
        predictor = Predictor.from_config(config.replace(run=run_dir))
    predictor.show_progress = sys.stderr.isatty() and not args.quiet
    if args.stdin:
        predictor.translate_stream(sys.stdin.buffer, sys.stdout, args.prefix)
    else:
        predictor.translate_folder(config.predict_in, config.predict_out, args.prefix)


def parser():
    parser = TranslatingParser(__doc__, USES)
    parser.add_argument(
        "stdin",
        nargs="?",
        metavar="-",
        help="read sentences from standard input, write translations to standard output",
    )
    parser.add_argument(
        "--prefix",
        type=Path,
        metavar="PATH",
        help="start each translation with the line of the same number in this file (an empty line for none); "
        "for several input files, a folder holding a prefix file named as each",
    )
    return parser


if __name__ == "__main__":
    run_script(parser(), predict)
