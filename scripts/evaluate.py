#!/usr/bin/env python3
"""Score a run on test files in the training format (source<TAB>target): BLEU, chrF, exact matches.

Without files, on the run's held-out test pairs (its test.txt). A run trained with reverse=true
reads the files' second column as the source. Every target of a source sentence
is a reference for it. Prints a table and adds the scores to eval.json in the run folder. With
--export DIR, scores an export of scripts/export.py on the files named, and records nothing.
"""

import sys
from collections import Counter
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

PREDICTION_KEYS = tuple(key for key in keys_of("Prediction") if key != "n_best")
USES = ("model_dir", "run", *DEVICE_KEYS, "on_bad_line", *PREDICTION_KEYS, "seed")


def evaluate(config, args):
    from sequencer.runs import find_trained_run

    # Checked before TensorFlow starts: the run or export, and the test files.
    export = chosen_export(args)
    run_dir = None if export else find_trained_run(config.model_dir, config.run)
    test_sets = read_test_sets(args, config, run_dir)
    if not export or export[1]["format"] == "savedmodel":
        import_tensorflow()  # a CTranslate2 export needs none
    from sequencer.evaluation import EVAL_FILE, record, scores_table
    from sequencer.translation import warn_of_unknown_tokens

    translator = load_translator(config, run_dir, export and export[0])
    rows, unknown = {}, Counter()
    for name, (entry, pairs) in test_sets.items():
        rows[name], found = translator.evaluate(pairs)
        unknown.update(found.unknown_tokens)
        if run_dir:
            record(run_dir, entry, rows[name])
    warn_of_unknown_tokens(unknown, translator.source_unit)
    print(scores_table(rows))
    signature = next(iter(rows.values()))["bleu_signature"]
    print(f"\nsaved in {run_dir / EVAL_FILE}; {signature}" if run_dir else f"\n{signature}")


def read_test_sets(args, config, run_dir):
    """{name in the table: (entry in eval.json, pairs)}: the files named, else the run's held-out test pairs."""
    from sequencer.data import directed, read_pairs, warn_of_skipped_lines
    from sequencer.errors import DataError
    from sequencer.runs import TEST_FILE, load_config

    reverse = run_dir is not None and load_config(run_dir).reverse  # test files read as the run trained

    test_sets = {}
    for path in args.files:
        if path.is_dir() or not path.exists():  # a pipe will do: `evaluate.py <(head -100 test.txt)`
            raise DataError(f"test file {path} {'is a folder, not a file' if path.is_dir() else 'does not exist'}")
        pairs, skipped = read_pairs(path, config.on_bad_line)
        warn_of_skipped_lines(skipped, path)
        if not pairs:
            raise DataError(f"test file {path} holds no source<TAB>target pairs")
        # The entry predict.py would score it under.
        test_sets[str(path)] = (str(path.absolute()), [directed(pair, reverse) for pair in pairs])
    if args.files:
        return test_sets
    if run_dir is None:
        command = f"evaluate.py --export {args.export} FILE"
        raise DataError(f"an export has no held-out test pairs; name test files: {command}")
    if not (run_dir / TEST_FILE).is_file():
        raise DataError(
            f"{run_dir} has no held-out test pairs ({TEST_FILE}, saved when test_split is above 0); "
            "name test files: evaluate.py FILE"
        )
    return {TEST_FILE: (TEST_FILE, read_pairs(run_dir / TEST_FILE)[0])}  # the entry training scored them under


def load_translator(config, run_dir, export_dir):
    """The run's translator with the config's Prediction keys, or the export's."""
    if export_dir:
        from sequencer.exports import open_export

        with native_log_lines_dropped():  # what SentencePiece logs as tensorflow-text loads a subword export
            return open_export(export_dir, config)
    from sequencer.devices import configure_device
    from sequencer.runs import load_run
    from sequencer.translation import Translator, warn_if_young

    configure_device(config.device, config.threads)
    run = load_run(run_dir)
    warn_if_young(run)
    return Translator(run, config)


def parser():
    parser = TranslatingParser(__doc__, USES)
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="test files: source<TAB>target per line (none: the run's held-out test pairs)",
    )
    return parser


if __name__ == "__main__":
    run_script(parser(), evaluate)
