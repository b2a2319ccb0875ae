#!/usr/bin/env python3
"""Training in bfloat16 against float32 on the CPU: epoch time, and quality after the same number of epochs.

The Transformer of configs/transformer.txt trains --epochs epochs on --num-samples pairs of the
shipped corpus (5% held out by source for the test and 5% for validation, as benchmarks/quality.py
splits them), with mixed_precision=false and with mixed_precision=bfloat16 (Keras' mixed_bfloat16),
--runs times each, seeds 1, 2, ... (the same seeds for both precisions: the same splits and initial
weights). Each run reports its epochs' mean time after the first (which also traces the training
step) and the first epoch's, and the BLEU and chrF of the held-out test pairs that training scores at
its end (greedy, decoded in float32 whatever precision it trained in). It also says whether this CPU
computes bfloat16 itself (avx512_bf16 or amx_bf16 in /proc/cpuinfo): elsewhere it is emulated, slowly.

    python benchmarks/bfloat16_speed.py                          # 2 x 2 runs of 2 epochs on all the pairs
    python benchmarks/bfloat16_speed.py --num-samples 20000 --epochs 3
    python benchmarks/bfloat16_speed.py --smoke                  # a tiny run, to check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
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
from sequencer.devices import cpu_has_bfloat16  # noqa: E402
from sequencer.evaluation import EVAL_FILE  # noqa: E402
from sequencer.runs import TEST_FILE  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402

PRECISIONS = ("false", "bfloat16")
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# a tiny Transformer on the toy corpus, two epochs, translations of at most 10 tokens.
SMOKE = {
    "epochs": 2,
    "num_samples": "0",
    "train_flags": {
        "train_dir": str(ROOT / "tests" / "data" / "train"),
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "num_layers": "1",
        "subword_vocab": "400",
        "warmup_steps": "10",
        "average_every": "2",
        "max_output_len": "10",
    },
}


class EpochTimer(keras.callbacks.Callback):
    """The seconds of each epoch, validation included."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.started)


def train(workspace: Path, precision: str, seed: int, args: argparse.Namespace) -> dict:
    """One run of configs/transformer.txt in `precision`: its epoch times and its test scores."""
    flags = {
        "model_dir": str(workspace),
        "run_name": f"{precision}-seed{seed}",
        "num_samples": args.num_samples,
        "test_split": "0.05",
        "val_split": "0.05",
        "epochs": str(args.epochs),
        "early_stopping_patience": "0",
        "beam_width": "1",  # the test split is scored greedily
        "mixed_precision": precision,
        "seed": str(seed),
        **args.train_flags,
    }
    config = load_config(ROOT / "configs" / "transformer.txt", flags, environ={})
    timer = EpochTimer()
    run_dir = Trainer(config, [timer], progress="none").train(Preprocessor(config).load())
    scores = json.loads((run_dir / EVAL_FILE).read_text())[TEST_FILE]
    later = timer.seconds[1:] or timer.seconds
    return {"first": timer.seconds[0], "epoch": statistics.mean(later), "bleu": scores["bleu"], "chrf": scores["chrf"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every run (default 2)")
    parser.add_argument("--num-samples", default="0", help="pairs read from training_files (default 0: all)")
    parser.add_argument("--runs", type=int, default=2, help="runs of each precision, seeds 1, 2, ... (default 2)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    parser.set_defaults(train_flags={})  # config keys changed for every run
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-bfloat16-"))
    results = {
        (precision, seed): train(workspace, precision, seed, args)
        for seed in range(1, args.runs + 1)
        for precision in PRECISIONS
    }
    report(args, results)
    print(f"runs: {workspace}")


def report(args: argparse.Namespace, results: dict) -> None:
    native = "computes bfloat16 itself" if cpu_has_bfloat16() else "has neither avx512_bf16 nor amx_bf16 (emulated)"
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(f"the CPU {native}; configs/transformer.txt, num_samples={args.num_samples}, {args.epochs} epochs per run\n")
    header = ["mixed_precision", "seed", "s per epoch (after the first)", "first epoch s", "BLEU", "chrF"]
    rows = [
        [precision, seed, *(f"{result[key]:.1f}" for key in ("epoch", "first", "bleu", "chrf"))]
        for (precision, seed), result in results.items()
    ]
    print(markdown_table(header, rows, numeric=[False] + [True] * 5))

    def mean(precision: str, key: str) -> float:
        return statistics.mean(result[key] for (p, _), result in results.items() if p == precision)

    print(
        f"\nepoch time float32 / bfloat16 = {mean('false', 'epoch') / mean('bfloat16', 'epoch'):.2f}; "
        f"chrF bfloat16 - float32 = {mean('bfloat16', 'chrf') - mean('false', 'chrf'):+.1f} (means of {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
