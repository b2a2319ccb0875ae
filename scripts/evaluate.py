#!/usr/bin/env python3
"""Score a run on test files in the training format (source<TAB>target): BLEU, chrF, exact matches.

Every target of a source sentence is a reference for it. Prints a table and adds the scores to
eval.json in the run folder.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import make_parser, run_script


def evaluate(config, args):
    from sequencer import Predictor
    from sequencer.data import read_pairs
    from sequencer.errors import DataError
    from sequencer.evaluation import EVAL_FILE, record, table

    for path in args.files:
        if not path.is_file():
            raise DataError(f"test file {path} does not exist")
    predictor = Predictor.from_config(config)
    rows = {}
    for path in args.files:
        pairs, _ = read_pairs(path, config.on_bad_line)
        if not pairs:
            raise DataError(f"test file {path} holds no source<TAB>target pairs")
        rows[str(path)] = predictor.evaluate(pairs)
        record(predictor.run.path, str(path), rows[str(path)])
    predictor.warn_unknown_tokens()
    print(table(rows))
    print(f"\nsaved in {predictor.run.path / EVAL_FILE}; {next(iter(rows.values()))['bleu_signature']}")


if __name__ == "__main__":
    parser = make_parser(__doc__)
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="test files: source<TAB>target per line")
    run_script(parser, evaluate)
