#!/usr/bin/env python3
"""Decoding modes and fine-tuning (issue 31): sampling, forced prefixes and scoring against greedy; init_from.

1. Speed. On the Transformer of configs/transformer.txt (the base run of part 2, or --run), and on
   the default LSTM of config.txt (config.txt as shipped, --lstm-epochs epochs on its 10,000
   pairs, or --lstm-run), each model translates the same --sentences held-out sources, in batches
   of --batch-size, in every mode:

   - greedy (beam_width=1), and beam 4;
   - sampling (decoding=sample, temperature 1, top_k 0, top_p 1, one sample), and with top_k 10;
   - greedy with a forced prefix: the first --prefix-words words of each source's first reference;
   - scoring: `Translator.score` of the (source, first reference) pairs, as scripts/score.py scores,
     at the same batch size: pairs per second.

   Each mode is traced first on a few sentences; then the modes take turns, --repeats passes each,
   and each keeps its fastest. The ratios to greedy come from the same run, as the machine is
   noisy, and the issue's targets are judged from them: sampling at least 0.8x greedy's
   sentences/s, a forced prefix at most 10% slower than greedy, scoring at least 5x greedy. The
   LSTM is there as well because its decoding step is the cheapest (about 6 ms for 64 sentences
   against the Transformer's 14): a fixed cost per step of sampling or of forcing weighs most there.

2. Fine-tuning. The base run: the Transformer trained on the first --base-pairs shipped pairs
   (training_files/fra.txt, sorted by English length) for --base-minutes. The shipped pairs from
   --finetune-start on (--finetune-pairs of them), written to a file in a temporary folder, are the
   new data; the --test-pairs pairs after them (less any whose source the new data holds) are their
   held-out neighbours, the test. The base run is scored on the test (BLEU and chrF, greedy, every
   reference of a source counted), then fine-tuned for --finetune-epochs epoch(s) on the new data
   with init_from (its vocabularies and weights; a fresh optimizer, as `--init_from` alone does,
   whose learning rate starts its warm-up again; and again with keep_optimizer=true, which goes on
   with the base's optimizer state and learning-rate schedule), and
   the fine-tuned runs are scored on the same test. Every file of the base run folder is hashed
   before and after: the issue's targets are a higher chrF after fine-tuning and a base run folder
   untouched. For reference, a run from scratch on the new data (its own vocabularies) trains for
   the fine-tuning's training time (--no-scratch leaves it out).

    python benchmarks/decoding_modes.py                     # about 20 minutes on 2 CPU cores, 10 of them training
    python benchmarks/decoding_modes.py --run models/transformer/RUN --lstm-run models/RUN
    python benchmarks/decoding_modes.py --smoke             # a tiny run, to check that it runs (numbers meaningless)

With --run, that Transformer run is the base of both parts: the speed part decodes its test.txt's
sources (or, without one, the pairs after its num_samples), and part 2 needs it trained on the
first pairs of the shipped file only, before --finetune-start (num_samples), or is left out.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer.cli import import_tensorflow  # noqa: E402

import_tensorflow()  # without TensorFlow's start-up lines, as the scripts do

import keras  # noqa: E402

from sequencer import Preprocessor, Trainer, load_config  # noqa: E402
from sequencer.config import Config  # noqa: E402
from sequencer.data import read_pairs  # noqa: E402
from sequencer.evaluation import ReferenceSet  # noqa: E402
from sequencer.runs import TEST_FILE, Run, load_run, load_summary  # noqa: E402
from sequencer.runs import load_config as run_config  # noqa: E402
from sequencer.scoring import Scores  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402
from sequencer.translation import Sampling, Translator  # noqa: E402

CORPUS = ROOT / "training_files" / "fra.txt"
TRANSFORMER = ROOT / "configs" / "transformer.txt"
LSTM = ROOT / "config.txt"
WARM_UP = 8  # sentences each mode decodes first, to trace its loop
# The targets, as a ratio of each mode's rate to greedy's: (lowest ratio, how the table states it).
SAMPLING_TARGET = (0.8, "≥ 0.8x greedy")
PREFIX_TARGET = (1 / 1.1, "≤ 10% slower than greedy")
SCORE_TARGET = (5.0, "≥ 5x greedy")
# How the fine-tuning and scratch runs train on the new data: all of it (no validation or test
# split, so the training loss picks model.keras and nothing averages), for epochs alone.
NEW_DATA_FLAGS = {
    "num_samples": "0",
    "val_split": "0",
    "test_split": "0",
    "monitor": "loss",
    "eval_every": "0",
    "average_last": "0",
    "average_every": "0",
    "early_stopping_patience": "0",
    "train_steps": "0",
    "steps_per_epoch": "0",
    "max_minutes": "0",
}
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# a tiny Transformer and LSTM on the first few hundred shipped pairs for a few seconds or one epoch, a few
# sentences decoded, a few hundred pairs to fine-tune on and a few dozen to test.
SMOKE = {
    "transformer_flags": {
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "num_layers": "1",
        "subword_vocab": "400",
    },
    "lstm_flags": {"latent_dim": "16", "num_samples": "300"},
    "base_pairs": 300,
    "base_minutes": 0.05,
    "lstm_epochs": 1,
    "sentences": 16,
    "batch_size": 8,
    "repeats": 1,
    "finetune_start": 1000,
    "finetune_pairs": 200,
    "test_pairs": 40,
}


@dataclass
class Mode:
    """One way of decoding (or scoring) the sentences: `run` gives the translations (or the scores)."""

    name: str
    run: Callable[[Translator, int], list[str] | Scores]  # (translator, how many of the sentences)
    target: tuple[float, str] | None = None
    best: float = float("inf")  # the fastest pass, in seconds
    tokens: int = 0


def modes(sources: list[str], references: list[list[str]], prefix_words: int) -> list[Mode]:
    """The modes measured, greedy first (the others' ratios are to it)."""
    prefixes = [" ".join(refs[0].split()[:prefix_words]) for refs in references]
    pairs = [(source, refs[0]) for source, refs in zip(sources, references)]

    def decoding(forced: bool = False, **how) -> Callable[[Translator, int], list[str]]:
        def run(translator: Translator, count: int) -> list[str]:
            forcing = {"prefixes": prefixes[:count]} if forced else {}
            return translator.translate(sources[:count], **how, **forcing).best

        return run

    def scoring(translator: Translator, count: int) -> Scores:
        return translator.score(pairs[:count])

    def sample(top_k: int) -> Sampling:
        return Sampling(temperature=1.0, top_k=top_k, top_p=1.0, seed=1)

    return [
        Mode("greedy", decoding(decoding="search", beam_width=1)),
        Mode("beam 4", decoding(decoding="search", beam_width=4)),
        Mode("sampling (temperature 1, top_k 0)", decoding(decoding="sample", sampling=sample(0)), SAMPLING_TARGET),
        Mode("sampling, top_k 10", decoding(decoding="sample", sampling=sample(10)), SAMPLING_TARGET),
        Mode(
            f"greedy, forced prefix ({prefix_words} words)",
            decoding(decoding="search", beam_width=1, forced=True),
            PREFIX_TARGET,
        ),
        Mode("score (source, reference) pairs", scoring, SCORE_TARGET),
    ]


def measure(run: Run, args: argparse.Namespace, sources: list[str], references: list[list[str]]) -> list[Mode]:
    """Each mode's fastest pass over the sentences with `run`, after a warm-up, the modes taking turns."""
    settings = run.config.replace(decoding="search", beam_width=1, n_best=1, decode_batch_size=args.batch_size)
    translator = Translator(run, settings)
    measured = modes(sources, references, args.prefix_words)
    for mode in measured:
        mode.run(translator, WARM_UP)
    for _ in range(args.repeats):
        for mode in measured:
            started = time.perf_counter()
            output = mode.run(translator, len(sources))
            mode.best = min(mode.best, time.perf_counter() - started)
            mode.tokens = output_tokens(run, output)
    return measured


def output_tokens(run: Run, output: list[str] | Scores) -> int:
    """The target tokens of translations, or of the targets scored (their end markers aside)."""
    if isinstance(output, Scores):
        return sum(pair.tokens - 1 for pair in output.pairs)
    return sum(len(run.target_vocab.encode(text)) for text in output)


def speed_rows(model: str, measured: list[Mode], count: int) -> list[list]:
    """The table's rows for one model: each mode's rate, its ratio to greedy's (the first mode) and its verdict."""
    greedy_rate = count / measured[0].best
    rows = []
    for mode in measured:
        rate = count / mode.best
        ratio = rate / greedy_rate
        verdict = f"{mode.target[1]}: {'met' if ratio >= mode.target[0] else 'not met'}" if mode.target else ""
        numbers = [count, f"{mode.best:.2f}", f"{rate:,.1f}", f"{ratio:.2f}", f"{mode.tokens / count:.1f}"]
        rows.append([model, mode.name, *numbers, verdict])
    return rows


def train(config_file: Path, flags: dict[str, str]) -> Path:
    return train_config(load_config(config_file, flags, environ={}))


def train_config(config: Config) -> Path:
    """A new run trained as `config` says: its folder."""
    return Trainer(config, progress="none").train(Preprocessor(config).load())


def held_out(run: Run, count: int) -> tuple[list[str], list[list[str]]]:
    """`count` distinct sources the run has not trained on, with all their references: its test
    split's, or else the shipped pairs after the ones it read (num_samples; their sources left out)."""
    test, skip = run.path / TEST_FILE, run.config.num_samples
    if test.is_file() and test.stat().st_size:
        reference_set = ReferenceSet.from_pairs(read_pairs(test)[0])
    elif skip:
        pairs = read_pairs(CORPUS)[0]
        seen = {source for source, _ in pairs[:skip]}
        reference_set = ReferenceSet.from_pairs([pair for pair in pairs[skip:] if pair[0] not in seen])
    else:
        raise SystemExit(f"{run.path} has no {TEST_FILE} and trained on every shipped pair: no held-out sources")
    return reference_set.sources[:count], reference_set.references[:count]


def folder_hashes(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder`: each file's SHA-256."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(folder.rglob("*"))
    }


def new_data(args: argparse.Namespace, workspace: Path) -> tuple[Path, list[tuple[str, str]]]:
    """The fine-tuning pairs as a file in `workspace`, and their held-out neighbours (test pairs)."""
    start, end = args.finetune_start, args.finetune_start + args.finetune_pairs
    pairs = read_pairs(CORPUS, limit=end + args.test_pairs)[0]
    finetune = pairs[start:end]
    sources = {source for source, _ in finetune}
    test = [pair for pair in pairs[end:] if pair[0] not in sources]
    if len(finetune) < args.finetune_pairs or not test:
        raise SystemExit(f"{CORPUS} has too few pairs for --finetune-start {start} and --finetune-pairs")
    path = workspace / "new-data" / "finetune.txt"
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"{source}\t{target}\n" for source, target in finetune), encoding="utf-8")
    (workspace / "new-data" / "test.txt").write_text(
        "".join(f"{source}\t{target}\n" for source, target in test), encoding="utf-8"
    )
    return path, test


def scores(run_dir: Path, test: list[tuple[str, str]], batch_size: int) -> dict:
    """BLEU and chrF of the run's greedy translations of the test sources, and its summary."""
    run = load_run(run_dir)
    settings = run.config.replace(decoding="search", beam_width=1, n_best=1, decode_batch_size=batch_size)
    found, _ = Translator(run, settings).evaluate(test)
    summary = load_summary(run_dir)
    return {**found, "epochs": summary["epochs_completed"], "seconds": summary["seconds"]}


def fine_tune(base: Path, train_file: Path, workspace: Path, name: str, flags: dict[str, str]) -> Path:
    """The base run fine-tuned on `train_file`: init_from, with the base run's own settings and `flags`."""
    config = run_config(
        base,
        {
            **NEW_DATA_FLAGS,
            "train_dir": str(train_file),
            "model_dir": str(workspace / "models"),
            "run_name": name,
            **flags,
        },
    )
    corpus = Preprocessor(config).load()
    base_run = load_run(base)
    if (corpus.source_vocab, corpus.target_vocab) != (base_run.source_vocab, base_run.target_vocab):
        raise SystemExit(
            f"Preprocessor(config).load() with init_from={base} did not read the new pairs with that run's "
            "vocabularies: preparation does not follow init_from"
        )
    return Trainer(config, progress="none").train(corpus)


def finetuning_table(args: argparse.Namespace, base: Path, workspace: Path) -> None:
    """Part 2: the base run, fine-tuned on new pairs two ways, and from scratch, scored on their neighbours."""
    train_file, test = new_data(args, workspace)
    first, last = args.finetune_start + 1, args.finetune_start + args.finetune_pairs
    print(
        f"\nnew data: shipped pairs {first:,}-{last:,}, fine-tuned for {args.finetune_epochs} epoch(s); test: the "
        f"{len(test)} pairs after them ({len(ReferenceSet.from_pairs(test).sources)} sources), translated greedily "
        f"in batches of {args.batch_size}\n"
    )
    base_scores = scores(base, test, args.batch_size)
    before = folder_hashes(base)
    start = {"init_from": str(base), "epochs": str(args.finetune_epochs)}
    variants = {
        "fine-tuned from the base (init_from, fresh optimizer)": ("finetuned", start),
        "fine-tuned from the base (init_from, keep_optimizer=true)": ("kept", {**start, "keep_optimizer": "true"}),
    }
    finetuned = {
        name: scores(fine_tune(base, train_file, workspace, run_name, flags), test, args.batch_size)
        for name, (run_name, flags) in variants.items()
    }
    after = folder_hashes(base)
    changed = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))

    trained = load_run(base).config
    new = f"{args.finetune_pairs:,} new"
    rows = [
        [
            "base" if base.name == "base" else f"base ({base.name})",
            f"first {trained.num_samples:,} ({trained.val_split:.0%} for validation)",
            *numbers(base_scores, None),
            "",
        ]
    ]
    for name, found in finetuned.items():
        met = "met" if found["chrf"] > base_scores["chrf"] else "not met"
        rows.append([name, new, *numbers(found, base_scores), f"chrF above the base's: {met}"])
    verdict = "all unchanged: met" if not changed else f"changed: {', '.join(changed[:5])}: not met"
    rows.append(
        ["base run folder, after the fine-tunings", "", "", "", "", "", "", f"{len(before)} paths hashed, {verdict}"]
    )
    if args.scratch:  # for the fresh fine-tuning's training time, on the new pairs alone, with their own vocabularies
        seconds = next(iter(finetuned.values()))["seconds"]
        flags = {**NEW_DATA_FLAGS, "train_dir": str(train_file), "model_dir": str(workspace / "models")}
        flags.update(run_name="scratch", epochs="1000", max_minutes=f"{seconds / 60:.4f}")
        scratch = train_config(run_config(base, flags))
        rows.append(
            [
                "from scratch on the new data, the fine-tuning's time",
                new,
                *numbers(scores(scratch, test, args.batch_size), base_scores),
                "",
            ]
        )
    header = ["run", "pairs trained on", "epochs", "training s", "BLEU", "chrF", "chrF - base", "issue 31 target"]
    print(markdown_table(header, rows, numeric=[False, True, True, True, True, True, True, False]))


def numbers(found: dict, base: dict | None) -> list[str]:
    """A row's epochs, training seconds, BLEU, chrF and chrF gain over the `base` scores (none: the base's row)."""
    gain = f"{found['chrf'] - base['chrf']:+.1f}" if base else ""
    return [found["epochs"], f"{found['seconds']:.0f}", f"{found['bleu']:.1f}", f"{found['chrf']:.1f}", gain]


def eligible_base(run: Run, start: int) -> str:
    """Why the run cannot be the base of the fine-tuning (it trained on the new data), or ""."""
    trained = run.config.num_samples
    if not trained or trained > start:
        return (
            f"{run.path} trained on {'all' if not trained else f'{trained:,}'} pairs, beyond --finetune-start {start}"
        )
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run", type=Path, help="a trained Transformer run, the base of both parts (default: train one)"
    )
    parser.add_argument("--lstm-run", type=Path, help="a trained LSTM run for the speed part (default: train one)")
    parser.add_argument(
        "--lstm-epochs", type=int, default=2, help="epochs of the LSTM trained without --lstm-run; 0: none"
    )
    parser.add_argument(
        "--base-pairs", type=int, default=20000, help="shipped pairs the base trains on (default 20000)"
    )
    parser.add_argument("--base-minutes", type=float, default=10.0, help="training time of the base (default 10)")
    parser.add_argument("--sentences", type=int, default=2000, help="held-out sources decoded per mode (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64, help="decode_batch_size of every mode (default 64)")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes per mode, the fastest kept (default 2)")
    parser.add_argument("--prefix-words", type=int, default=2, help="reference words forced as the prefix (default 2)")
    parser.add_argument("--finetune-start", type=int, default=40000, help="first new pair, 0-based (default 40000)")
    parser.add_argument("--finetune-pairs", type=int, default=5000, help="new pairs fine-tuned on (default 5000)")
    parser.add_argument("--finetune-epochs", type=int, default=1, help="epochs of fine-tuning (default 1)")
    parser.add_argument("--test-pairs", type=int, default=500, help="pairs after the new ones, the test (default 500)")
    parser.add_argument(
        "--no-scratch", dest="scratch", action="store_false", help="no run from scratch on the new data"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    parser.set_defaults(transformer_flags={}, lstm_flags={})  # config keys changed for the models trained here
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-decoding-"))

    if args.run is None:
        flags = {
            "model_dir": str(workspace / "models"),
            "run_name": "base",
            "num_samples": str(args.base_pairs),
            "test_split": "0",  # its held-out pairs are the shipped pairs after its own
            "epochs": "1000",  # the time budget ends training
            "max_minutes": str(args.base_minutes),
            "early_stopping_patience": "0",
            **args.transformer_flags,
        }
        args.run = train(TRANSFORMER, flags)
    runs = {"transformer": load_run(args.run.absolute())}
    if args.lstm_run is None and args.lstm_epochs:
        flags = {"model_dir": str(workspace / "models"), "run_name": "lstm", "epochs": str(args.lstm_epochs)}
        args.lstm_run = train(LSTM, {**flags, **args.lstm_flags})
    if args.lstm_run:
        runs["lstm"] = load_run(args.lstm_run.absolute())
    sources, references = held_out(runs["transformer"], args.sentences)

    rows = []
    for model, run in runs.items():
        rows += speed_rows(model, measure(run, args, sources, references), len(sources))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(f"Keras {keras.__version__}; runs: {', '.join(str(run.path) for run in runs.values())}")
    print(
        f"speed: {len(sources)} held-out sources, batches of {args.batch_size}, the fastest of {args.repeats} "
        "pass(es) per mode after a warm-up; score: pairs per second\n"
    )
    header = ["model", "mode", "sentences", "seconds", "sentences/s", "× greedy", "tokens/sentence", "issue 31 target"]
    print(markdown_table(header, rows, numeric=[False, False, True, True, True, True, True, False]))

    unfit = eligible_base(runs["transformer"], args.finetune_start)
    if unfit:
        print(f"\nfine-tuning left out: {unfit}")
    else:
        finetuning_table(args, runs["transformer"].path, workspace)
    print(f"\nruns and data: {workspace}; {time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
