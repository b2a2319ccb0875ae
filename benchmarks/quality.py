#!/usr/bin/env python3
"""Translation quality and decoding speed at equal training time: LSTM, attention and Transformer.

Each model trains on the same shipped pairs, with the same held-out test split (by source
sentence, drawn with the same seed) and the same validation split, for the same wall-clock
budget; training stops at the first batch that ends past the budget. Each run's final model
(the best epoch by validation loss, or the average of the last snapshots where the config
averages and the average validates better) is then scored on the test split by the Trainer
itself (BLEU and chrF from sacrebleu, every translation of a source a reference), as `eval.json`
in each run folder.

The contenders: the default LSTM on characters (config.txt as shipped), the attention model on
words, and the Transformer on subwords (configs/transformer.txt as shipped). After training,
each final model translates the same test sources (--decode-sentences of them) greedily and with
a beam of 4, at the same batch size, and the sentences per second are reported.

    python benchmarks/quality.py                  # 3 x 30 minutes of training on 2 CPU cores
    python benchmarks/quality.py --minutes 2      # a quick look
    python benchmarks/quality.py --decode-only /tmp/sequencer-bench-quality-XXXX   # decoding again
    python benchmarks/quality.py --smoke          # tiny models, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer.cli import import_tensorflow  # noqa: E402

import_tensorflow()  # without TensorFlow's start-up lines, as the scripts do

import keras  # noqa: E402

from sequencer import Preprocessor, Trainer, load_config  # noqa: E402
from sequencer.evaluation import EVAL_FILE, ReferenceSet  # noqa: E402
from sequencer.runs import SUMMARY_FILE, TEST_FILE, load_run  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402
from sequencer.translation import Translator  # noqa: E402

# Each contender: a config file and the flags it adds. The attention model reads words, with
# learned embeddings: on a CPU that is what makes attention affordable in a fixed time.
CONTENDERS = {
    "lstm (default, characters)": (ROOT / "config.txt", {}),
    "attention (luong, words)": (
        ROOT / "config.txt",
        {
            "model": "attention",
            "token_level": "word",
            "max_vocab": "6000",
            "embedding_dim": "128",
            "dropout": "0.2",
            "optimizer": "adam",
        },
    ),
    "transformer (subwords)": (ROOT / "configs" / "transformer.txt", {}),
}
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# every contender on the toy corpus, tiny, for a few seconds (the first batch, which traces, ends past them),
# translations of at most 10 tokens, a few sentences decoded.
SMOKE = {
    "minutes": 0.05,
    "train_flags": {
        "train_dir": str(ROOT / "tests" / "data" / "train"),
        "latent_dim": "16",
        "embedding_dim": "16",
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "num_layers": "1",
        "subword_vocab": "400",
        "max_output_len": "10",
    },
    "decode_sentences": 16,
    "decode_batch_size": 8,
}


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the first batch past `seconds` of training."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.started = 0.0
        self.elapsed = 0.0

    def on_train_begin(self, logs=None):
        self.started = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.started > self.seconds:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        self.elapsed = time.monotonic() - self.started


def shared_flags(workspace: Path, num_samples: str, train_flags: dict[str, str]) -> dict[str, str]:
    """The flags every contender trains with (benchmarks/ctranslate_speed.py trains its Transformer so too):
    the same test and validation splits, the time budget alone ending training."""
    return {
        "model_dir": str(workspace),
        "num_samples": num_samples,
        "test_split": "0.05",
        "val_split": "0.05",
        "epochs": "1000",  # the time budget ends training
        "early_stopping_patience": "0",
        "beam_width": "1",  # the test split is scored greedily
        **train_flags,
    }


def train(name: str, config_file: Path, flags: dict[str, str], shared: dict[str, str], seconds: float) -> dict:
    config = load_config(config_file, {**flags, **shared, "run_name": name.split()[0]}, environ={})
    budget = TimeBudget(seconds)
    run_dir = Trainer(config, [budget], progress="none").train(Preprocessor(config).load())
    return trained(name, run_dir, budget.elapsed)


def trained(name: str, run_dir: Path, seconds: float) -> dict:
    """What the table shows of a trained contender's run: its epochs and its scores on the test split."""
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    scores = json.loads((run_dir / EVAL_FILE).read_text())[TEST_FILE]
    return {
        "name": name,
        "run": run_dir,
        "test": (run_dir / TEST_FILE).read_text(encoding="utf-8"),
        "seconds": seconds,
        "epochs": summary["epochs_completed"],
        "best_epoch": summary["best_epoch"],
        **scores,
    }


def decoding_speed(run_dir: Path, sentences: list[str], batch_size: int) -> dict[str, float]:
    """Sentences per second of the best model, greedy and with a beam of 4, in steady state.

    The sentences are translated once before they are timed: the first pass traces the decoding
    loop and lets TensorFlow prepare its kernels for each shape of batch it meets.
    """
    run = load_run(run_dir)
    speeds = {}
    for beam_width in (1, 4):
        translator = Translator(run, run.config.replace(beam_width=beam_width, decode_batch_size=batch_size))
        translator.translate(sentences)
        started = time.perf_counter()
        translator.translate(sentences)
        speeds[beam_width] = len(sentences) / (time.perf_counter() - started)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="training time per model (default 30)")
    parser.add_argument("--num-samples", default="0", help="pairs read from training_files (default 0: all)")
    parser.add_argument("--decode-sentences", type=int, default=2000, help="test sources decoded for speed")
    parser.add_argument("--decode-batch-size", type=int, default=64, help="sentences decoded together")
    parser.add_argument("--only", nargs="*", default=list(CONTENDERS), help="contenders to run (default: all)")
    parser.add_argument(
        "--decode-only",
        metavar="RUNS",
        type=Path,
        help="train nothing: measure decoding again on the runs an earlier run of this benchmark left in RUNS "
        "(training s is then the epochs' time from each summary.json)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny models, to check that it runs (numbers meaningless)")
    parser.set_defaults(train_flags={})  # config keys changed for every contender
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    contenders = {name: CONTENDERS[name] for name in args.only}
    if args.decode_only:
        workspace = args.decode_only
        results = []
        for name in contenders:
            run_dir = workspace / name.split()[0]
            if not (run_dir / SUMMARY_FILE).is_file():
                print(f"--decode-only: {workspace} has no trained {run_dir.name} run", file=sys.stderr)
                raise SystemExit(2)
            summary = json.loads((run_dir / SUMMARY_FILE).read_text())
            results.append(trained(name, run_dir, summary["seconds"]))
        report(args, workspace, results)
        return

    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-quality-"))
    shared = shared_flags(workspace, args.num_samples, args.train_flags)
    results = [train(name, *setting, shared, 60 * args.minutes) for name, setting in contenders.items()]
    report(args, workspace, results)


def report(args: argparse.Namespace, workspace: Path, results: list[dict]) -> None:
    """Decoding speed of each trained contender, then the table."""
    if len({result["test"] for result in results}) != 1:
        raise SystemExit("the contenders were tested on different pairs")
    test_pairs = [tuple(line.split("\t")) for line in results[0]["test"].splitlines()]
    sentences = ReferenceSet.from_pairs(test_pairs).sources[: args.decode_sentences]
    for result in results:
        result["speed"] = decoding_speed(result["run"], sentences, args.decode_batch_size)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    budget = f"runs trained earlier in {workspace}" if args.decode_only else f"budget {args.minutes:g} minutes each"
    print(
        f"pairs: num_samples={args.num_samples}, test split 5% by source ({results[0]['sentences']} sources, "
        f"{results[0]['references']} references), validation 5%; {budget}; "
        f"decoding: {len(sentences)} test sources, batches of {args.decode_batch_size}"
    )
    header = ["model", "epochs (best)", "training s", "BLEU", "chrF", "exact %", "greedy sent/s", "beam 4 sent/s"]
    rows = [
        [
            result["name"],
            f"{result['epochs']} ({result['best_epoch']})",
            f"{result['seconds']:.0f}",
            f"{result['bleu']:.1f}",
            f"{result['chrf']:.1f}",
            f"{result['exact_match']:.1f}",
            f"{result['speed'][1]:.0f}",
            f"{result['speed'][4]:.0f}",
        ]
        for result in results
    ]
    print(markdown_table(header, rows, numeric=[False] + [True] * 7))
    by_name = {result["name"].split()[0]: result for result in results}
    if {"transformer", "attention"} <= set(by_name):
        transformer, attention = by_name["transformer"], by_name["attention"]
        print(
            f"chrF, transformer - attention: {transformer['chrf'] - attention['chrf']:+.1f} (target: at least +5); "
            f"greedy speed, transformer / attention: {transformer['speed'][1] / attention['speed'][1]:.2f} "
            "(target: at least 0.5)"
        )
    print(f"runs: {workspace}")


if __name__ == "__main__":
    main()
