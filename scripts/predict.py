#!/usr/bin/env python3
"""Translate every *.txt file in predict_in into predict_out, or standard input with `-`."""

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import make_parser, run_script


def predict(config, args):
    from sequencer import Predictor

    if args.quiet:
        logging.getLogger("sequencer").setLevel(logging.WARNING)
    predictor = Predictor.from_config(config)
    predictor.show_progress = sys.stderr.isatty() and not args.quiet
    if args.stdin:
        predictor.translate_stream(sys.stdin.buffer, sys.stdout)
    else:
        predictor.translate_folder(config.predict_in, config.predict_out)


if __name__ == "__main__":
    parser = make_parser(__doc__)
    parser.add_argument(
        "stdin",
        nargs="?",
        choices=["-"],
        help="read sentences from standard input, write translations to standard output",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line and no messages but warnings and errors")
    run_script(parser, predict)
