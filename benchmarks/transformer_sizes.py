#!/usr/bin/env python3
"""What a Transformer's training batch and decoding step cost, by size: how configs/transformer.txt was sized.

Each candidate is configs/transformer.txt with a few keys changed. It trains on all the shipped
pairs (no test split, 5% for validation) for --batches batches of the config's batch size; the time of the
batches after the first --warmup ones (tracing and the first shapes) gives seconds per batch,
and from it the epochs that 30 minutes of training would see. Then the trained model decodes
with search.py's GreedyDecoder (what beam_width=1 runs) a batch of 64 sources of 10 tokens for
exactly 10 tokens (the end marker banned until then, so the number of steps does not depend on
what 60 batches have taught it); the best of 20 decodes, divided by 10, gives milliseconds per
decoding step of 64 sentences, the encoder's one pass included. Nothing is scored: this measures
cost, not quality. One SentencePiece model per vocabulary size is trained and shared.

    python benchmarks/transformer_sizes.py        # about 10 minutes on 2 CPU cores
    python benchmarks/transformer_sizes.py --smoke   # tiny models, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
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
import numpy as np  # noqa: E402

from sequencer import Preprocessor, Trainer, load_config  # noqa: E402
from sequencer.search import GreedyDecoder  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402

CONFIG_FILE = ROOT / "configs" / "transformer.txt"
# name: the keys changed from configs/transformer.txt.
CANDIDATES = {
    "shipped": {},
    "2+2 layers (shipped before decoder_layers)": {"num_layers": "2", "decoder_layers": "2"},
    "2+1 layers": {"num_layers": "2", "decoder_layers": "1"},
    "4+1 layers": {"num_layers": "4", "decoder_layers": "1"},
    "3+3 layers, ffn 1024, vocab 8000": {"decoder_layers": "3", "ffn_dim": "1024", "subword_vocab": "8000"},
    "2+2 layers, ffn 1024, vocab 8000": {
        "num_layers": "2",
        "decoder_layers": "2",
        "ffn_dim": "1024",
        "subword_vocab": "8000",
    },
    "3+3 layers, ffn 512, vocab 8000": {"decoder_layers": "3", "subword_vocab": "8000"},
    "3+3 layers, ffn 1024, vocab 4000": {"decoder_layers": "3", "ffn_dim": "1024"},
    "6+6 layers, 512 wide, ffn 2048, vocab 8000 (GPU size)": {
        "num_layers": "6",
        "decoder_layers": "6",
        "model_dim": "512",
        "ffn_dim": "2048",
        "subword_vocab": "8000",
    },
}


# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# two candidates on the toy corpus (5 batches an epoch), made tiny, for 4 batches, the last 2 timed.
SMOKE = {
    "batches": 4,
    "warmup": 2,
    "only": ["shipped", "2+1 layers"],
    "train_flags": {
        "train_dir": str(ROOT / "tests" / "data" / "train"),
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "subword_vocab": "400",
    },
}

# Greedy decoding is timed on batches of this many sentences of this many tokens, for as many tokens.
DECODE_BATCH, DECODE_TOKENS = 64, 10


def greedy_ms_per_step(model: keras.Model, vocab_size: int, repeats: int = 20) -> float:
    """Milliseconds per step of greedy decoding a batch of DECODE_BATCH sources (best of `repeats`)."""
    rng = np.random.default_rng(0)
    source_ids = rng.integers(4, vocab_size, size=(DECODE_BATCH, DECODE_TOKENS)).astype("int32")
    decode = GreedyDecoder(model)
    decode(source_ids, DECODE_TOKENS, DECODE_TOKENS)  # traced once before timing
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        decode(source_ids, DECODE_TOKENS, DECODE_TOKENS)
        best = min(best, time.perf_counter() - started)
    return 1000 * best / DECODE_TOKENS


class BatchClock(keras.callbacks.Callback):
    """Times the batches after the first `warmup`, and stops training after `batches`."""

    def __init__(self, warmup: int, batches: int):
        super().__init__()
        self.warmup, self.batches = warmup, batches
        self.started = self.seconds = 0.0
        self.parameters = 0

    def on_train_begin(self, logs=None):
        self.parameters = self.model.count_params()

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.warmup:
            self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.batches:
            self.seconds = (time.perf_counter() - self.started) / (self.batches - self.warmup)
            self.model.stop_training = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=60, help="batches trained per candidate (default 60)")
    parser.add_argument("--warmup", type=int, default=10, help="first batches left out of the timing (default 10)")
    parser.add_argument("--only", nargs="*", default=list(CANDIDATES), help="candidates to run (default: all)")
    parser.add_argument("--smoke", action="store_true", help="tiny models, to check that it runs (numbers meaningless)")
    parser.set_defaults(train_flags={})  # config keys changed for every candidate, after the candidate's own
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")

    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-sizes-"))
    shared = {"model_dir": str(workspace), "epochs": "1", "test_split": "0", "eval_every": "0"}
    shared.update(average_last="0", average_every="0")  # one epoch: nothing to average
    corpora, rows = {}, []
    for name in args.only:
        config = load_config(CONFIG_FILE, {**shared, **CANDIDATES[name], **args.train_flags}, environ={})
        if config.subword_vocab not in corpora:
            corpora[config.subword_vocab] = Preprocessor(config).load()
        corpus = corpora[config.subword_vocab]
        clock = BatchClock(args.warmup, args.batches)
        Trainer(config, [clock], progress="none").train(corpus)
        batches_per_epoch = -(-corpus.train_pairs // config.batch_size)
        epochs = 30 * 60 / (clock.seconds * batches_per_epoch)
        greedy_ms = greedy_ms_per_step(clock.model, len(corpus.source_vocab))
        rows.append(
            [
                name,
                f"{config.num_layers}+{clock.model.settings.decoder_depth}",
                config.model_dim,
                config.ffn_dim,
                len(corpus.target_vocab),
                f"{clock.parameters:,}",
                f"{clock.seconds:.3f}",
                f"{config.batch_size / clock.seconds:.0f}",
                f"{epochs:.1f}",
                f"{greedy_ms:.1f}",
            ]
        )
        progress = f"{name}: {clock.seconds:.3f} s per batch, {greedy_ms:.1f} ms per greedy step"
        print(progress, file=sys.stderr, flush=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    first = next(iter(corpora.values()))
    print(f"{first.train_pairs} training pairs, batches of {config.batch_size} pairs (bucketed)")
    print(f"greedy decoding: batches of {DECODE_BATCH} sources of {DECODE_TOKENS} tokens, {DECODE_TOKENS} tokens out")
    header = [
        *("candidate", "layers", "width", "ffn", "vocab", "parameters"),
        *("s/batch", "pairs/s", "epochs in 30 min", f"greedy ms/step ({DECODE_BATCH} sentences)"),
    ]
    print(markdown_table(header, rows, numeric=[False] + [True] * (len(header) - 1)))
    print(f"runs: {workspace}")


if __name__ == "__main__":
    main()
