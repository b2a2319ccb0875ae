#!/usr/bin/env python3
"""Score given translations: each pair's log-probability under a model, in total and per token.

Reads pairs in the training format (source<TAB>target, one per line) from FILE, or standard input
with `-`, and writes one line per input line, in input order: total<TAB>per_token<TAB>source<TAB>target
(a blank line, or a malformed one with on_bad_line=skip, gives a blank line); with --sort, the
pairs alone, best per token first. The total is the sum of the log-probabilities of the target's
tokens and its end marker, as search scores its own translations; per token it is comparable
across lengths. A run's model or a CTranslate2 export (--export) scores; a SavedModel cannot.
A run trained with reverse=true reads each line's second column as the source, as it trained.
"""

import sys
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import DEVICE_KEYS, TranslatingParser, chosen_export, import_tensorflow, run_script

USES = ("model_dir", "run", "on_bad_line", "decode_batch_size", *DEVICE_KEYS)
CHUNK_LINES = 8192  # pairs scored at a time: input of any length in bounded memory (but with --sort)


def score(config, args):
    from sequencer.errors import DataError
    from sequencer.runs import find_trained_run, load_config

    export = chosen_export(args)  # the model and the file are checked before TensorFlow starts
    if export and export[1]["format"] == "savedmodel":
        raise DataError(f"{export[0]} is a SavedModel export, which cannot score pairs; score with its run")
    run_dir = None if export else find_trained_run(config.model_dir, config.run)
    path = Path(args.file)
    if args.file != "-" and (path.is_dir() or not path.exists()):  # a pipe will do: score.py <(head pairs.txt)
        raise DataError(f"pair file {args.file} {'is a folder, not a file' if path.is_dir() else 'does not exist'}")
    translator = load_translator(config, run_dir, export)
    reverse = run_dir is not None and load_config(run_dir).reverse  # a run of the other direction
    rows = scored_rows(translator, read_pairs(args.file, config.on_bad_line, reverse))
    if args.sort:
        rows = sorted((row for row in rows if row), key=lambda row: row[1].per_token, reverse=True)
    scored = 0
    for row in rows:
        if row is None:
            print()
            continue
        (source, target), pair_score = row
        print(f"{pair_score.total:.4f}\t{pair_score.per_token:.4f}\t{source}\t{target}")
        scored += 1
    if not scored:
        raise DataError(f"{'standard input' if args.file == '-' else args.file} holds no source<TAB>target pairs")


def load_translator(config, run_dir, export):
    """The translator that scores: the run's, or a CTranslate2 export's."""
    if export:
        from sequencer.exports import open_export

        return open_export(export[0], config)
    import_tensorflow()
    from sequencer.devices import configure_device
    from sequencer.runs import load_run
    from sequencer.translation import Translator

    configure_device(config.device, config.threads)
    return Translator(load_run(run_dir), config)


def read_pairs(file: str, on_bad_line: str, reverse: bool):
    """Each line's (source, target) as the model reads them (`reverse`: the run's), or None for a
    blank line or a malformed one skipped; DataError naming the file and line of a malformed one otherwise."""
    from sequencer.data import decode_line, directed, open_binary, parse_pair
    from sequencer.errors import DataError

    name = "<stdin>" if file == "-" else file
    stream = sys.stdin.buffer if file == "-" else open_binary(Path(file))
    for number, raw in enumerate(stream, start=1):
        text = decode_line(raw, Path(name), number)
        if not text.strip():
            yield None
            continue
        try:
            yield directed(parse_pair(text), reverse)
        except ValueError as error:
            if on_bad_line != "skip":
                raise DataError(f"{name}:{number}: {error}; expected source<TAB>target") from None
            yield None


def scored_rows(translator, lines):
    """((source, target), PairScore) for each pair of `lines`, None where a line held none, chunk
    by chunk; at the end, one warning for the tokens never seen in training."""
    from collections import Counter

    from sequencer.translation import warn_of_unknown_tokens

    lines, unknown = iter(lines), Counter()
    while chunk := list(islice(lines, CHUNK_LINES)):
        pairs = [pair for pair in chunk if pair]
        found = translator.score(pairs)
        unknown.update(found.unknown_tokens)
        scored = iter(zip(pairs, found.pairs))
        yield from (next(scored) if pair else None for pair in chunk)
    warn_of_unknown_tokens(unknown, translator.source_unit)


def parser():
    parser = TranslatingParser(__doc__, USES)
    parser.add_argument("file", metavar="FILE", help="pairs to score, source<TAB>target per line; - for standard input")
    parser.add_argument("--sort", action="store_true", help="best per-token log-probability first")
    return parser


if __name__ == "__main__":
    run_script(parser(), score)
