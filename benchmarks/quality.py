#!/usr/bin/env python3
"""Translation quality at equal training time: the default LSTM against the attention model.

Each model trains on the same shipped pairs, with the same held-out test split (by source
sentence, drawn with the same seed) and the same validation split, for the same wall-clock
budget; training stops at the first batch that ends past the budget. The best epoch (by
validation loss) is then scored on the test split by the Trainer itself (BLEU and chrF from
sacrebleu, every translation of a source a reference), as `eval.json` in each run folder.

    python benchmarks/quality.py                  # 2 x 12 minutes of training on 2 CPU cores
    python benchmarks/quality.py --minutes 2      # a quick look
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from sequencer import Preprocessor, Trainer, load_config  # noqa: E402

# What each contender changes from the shared settings. The attention model reads words, with
# learned embeddings: on a CPU that is what makes attention affordable in a fixed time.
CONTENDERS = {
    "lstm (default, characters)": {},
    "attention (luong, words)": {
        "model": "attention",
        "token_level": "word",
        "max_vocab": "6000",
        "embedding_dim": "128",
        "dropout": "0.2",
        "optimizer": "adam",
    },
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


def train(name: str, flags: dict[str, str], shared: dict[str, str], seconds: float) -> dict:
    config = load_config(flags={**shared, **flags, "run_name": name.split()[0]}, environ={})
    budget = TimeBudget(seconds)
    run_dir = Trainer(config, [budget]).train(Preprocessor(config).load())
    summary = json.loads((run_dir / "summary.json").read_text())
    scores = json.loads((run_dir / "eval.json").read_text())["test.txt"]
    return {
        "name": name,
        "run": run_dir,
        "test": (run_dir / "test.txt").read_text(encoding="utf-8"),
        "seconds": budget.elapsed,
        "epochs": summary["epochs_completed"],
        "best_epoch": summary["best_epoch"],
        **scores,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=12.0, help="training time per model (default 12)")
    parser.add_argument("--num-samples", default="0", help="pairs read from training_files (default 0: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-quality-"))
    shared = {
        "model_dir": str(workspace),
        "num_samples": args.num_samples,
        "test_split": "0.05",
        "val_split": "0.05",
        "epochs": "1000",  # the time budget ends training
    }
    results = [train(name, flags, shared, 60 * args.minutes) for name, flags in CONTENDERS.items()]
    if len({result["test"] for result in results}) != 1:
        raise SystemExit("the contenders were tested on different pairs")

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(
        f"pairs: num_samples={args.num_samples}, test split 5% by source ({results[0]['sentences']} sources, "
        f"{results[0]['references']} references), validation 5%; budget {args.minutes:g} minutes each"
    )
    print("| model | epochs (best) | training s | BLEU | chrF | exact % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for result in results:
        print(
            f"| {result['name']} | {result['epochs']} ({result['best_epoch']}) | {result['seconds']:.0f} "
            f"| {result['bleu']:.1f} | {result['chrf']:.1f} | {result['exact_match']:.1f} |"
        )
    baseline, attention = results
    print(f"chrF difference (attention - lstm): {attention['chrf'] - baseline['chrf']:+.1f} (target: at least +10)")
    print(f"runs: {workspace}")


if __name__ == "__main__":
    main()
