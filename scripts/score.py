#!/usr/bin/env python3
"""Score given translations: each pair's log-probability under a run's model, in total and per token.

Reads pairs in the training format (source<TAB>target, one per line) from FILE, or standard input
with `-`, and writes one line per input line: total<TAB>per_token<TAB>source<TAB>target, in input
order (a blank input line gives a blank line), or with --sort best per token first. The total
counts the target's end marker, as search's scores do.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from sequencer.cli import DEVICE_KEYS, Parser, import_tensorflow, run_script

USES = ("model_dir", "run", "on_bad_line", "decode_batch_size", *DEVICE_KEYS)


def score(config, args):
    from sequencer.data import decode_line, parse_pair
    from sequencer.errors import DataError
    from sequencer.runs import find_trained_run

    run_dir = find_trained_run(config.model_dir, config.run)  # checked before TensorFlow starts
    name = "<stdin>" if args.file == "-" else args.file
    if args.file != "-" and not Path(args.file).is_file():
        raise DataError(f"pair file {args.file} {'is a folder' if Path(args.file).is_dir() else 'does not exist'}")
    stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115 -- stdin is not ours to close
    lines = []  # (pair or None for a blank or skipped line)
    for number, raw in enumerate(stream, start=1):
        text = decode_line(raw, Path(name), number)
        if not text.strip():
            lines.append(None)
            continue
        try:
            lines.append(parse_pair(text))
        except ValueError as error:
            if config.on_bad_line != "skip":
                raise DataError(f"{name}:{number}: {error}; expected source<TAB>target") from None
            lines.append(None)
    import_tensorflow()
    from sequencer.devices import configure_device
    from sequencer.runs import load_run
    from sequencer.scoring import Scorer
    from sequencer.translation import warn_of_unknown_tokens

    configure_device(config.device, config.threads)
    run = load_run(run_dir)
    pairs = [pair for pair in lines if pair]
    found = Scorer(run, config).score(pairs)
    warn_of_unknown_tokens(found.unknown_tokens, run.source_vocab.unit)
    scored = iter(zip(pairs, found.pairs))
    rows = [next(scored) if pair else None for pair in lines]
    if args.sort:
        rows = sorted((row for row in rows if row), key=lambda row: row[1].per_token, reverse=True)
    for row in rows:
        if row is None:
            print()
            continue
        (source, target), pair_score = row
        print(f"{pair_score.total:.4f}\t{pair_score.per_token:.4f}\t{source}\t{target}")


def parser():
    parser = Parser(__doc__, USES)
    parser.add_argument("file", metavar="FILE", help="pairs to score, source<TAB>target per line; - for standard input")
    parser.add_argument("--sort", action="store_true", help="best per-token log-probability first")
    return parser


if __name__ == "__main__":
    run_script(parser(), score)
