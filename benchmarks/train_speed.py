#!/usr/bin/env python3
"""Training speed and memory: the project's training against the original Keras example's.

In one run, on the same pairs (the first 10,000 of training_files/fra.txt), with the same
architecture (LSTM encoder-decoder, latent_dim 256), batch size 64 and rmsprop:

- reference: the original example: the whole corpus one-hot encoded in NumPy float32 arrays padded
  to the longest pair, `fit(validation_split=0.2)`;
- project: `Trainer` with the default config (integer ids, tf.data, bucketed batches, masking).

Both validate on the same pairs: the reference's arrays are ordered so that `validation_split`'s
last 20% are the project's validation pairs. Validation loss is compared per real character
(the reference's own val_loss also averages its padding positions, whose all-zero targets cost
nothing), computed the same way for both. Then, each in a fresh process: peak memory of data
preparation for both at 10,000 pairs and at the full corpus, and peak memory of
`scripts/train.py --num_samples 0 --epochs 1` (the full corpus).

    python benchmarks/train_speed.py            # about 15 minutes on 2 CPU cores
    python benchmarks/train_speed.py --smoke    # a tiny run, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer.cli import import_tensorflow  # noqa: E402

import_tensorflow()  # without TensorFlow's start-up lines, as the scripts do

import numpy as np  # noqa: E402

from sequencer import Preprocessor, load_config  # noqa: E402
from sequencer.data import pad_ids, teacher_forcing  # noqa: E402

LATENT_DIM, BATCH_SIZE, PAIRS = 256, 64, 10000
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# 300 pairs, latent_dim 16, one epoch; data preparation measured at 300 pairs only (not the full corpus); the
# "full corpus" epoch of scripts/train.py on 300 pairs with latent_dim 16.
SMOKE = {
    "epochs": 1,
    "pairs": 300,
    "latent_dim": 16,
    "memory_pairs": [300],
    "full_training_flags": ["--num_samples", "300", "--latent_dim", "16"],
}


def config_for(workspace: Path, num_samples: int, epochs: int = 1, latent_dim: int = LATENT_DIM):
    flags = {"model_dir": str(workspace / "models"), "num_samples": str(num_samples), "epochs": str(epochs)}
    return load_config(flags={**flags, "latent_dim": str(latent_dim)}, environ={})


def one_hot_arrays(corpus):
    """The original example's arrays, train pairs first and validation pairs last, over the project's ids."""
    train_source, train_target = corpus.train_sequences()
    sources = list(train_source) + list(corpus.val_source)
    decoder_input, decoder_target = teacher_forcing(train_target)
    val_input, val_target = teacher_forcing(corpus.val_target)
    inputs, targets = list(decoder_input) + list(val_input), list(decoder_target) + list(val_target)
    source_width, target_width = len(corpus.source_vocab), len(corpus.target_vocab)
    encoder_data = np.zeros((len(sources), max(map(len, sources)), source_width), dtype="float32")
    decoder_data = np.zeros((len(inputs), max(map(len, inputs)), target_width), dtype="float32")
    target_data = np.zeros((len(inputs), max(map(len, inputs)), target_width), dtype="float32")
    for i, (source, decoder_in, decoder_out) in enumerate(zip(sources, inputs, targets)):
        encoder_data[i, np.arange(len(source)), source] = 1.0
        decoder_data[i, np.arange(len(decoder_in)), decoder_in] = 1.0
        target_data[i, np.arange(len(decoder_out)), decoder_out] = 1.0
    return encoder_data, decoder_data, target_data


def prepare(kind: str, num_samples: int) -> None:
    """Data preparation alone, in a fresh process: prints its peak resident memory (VmHWM) above the
    process' resident memory before it (VmRSS, with this module's imports, TensorFlow's included), in MB."""
    baseline = memory_status("VmRSS")
    config = config_for(Path(tempfile.gettempdir()), num_samples)
    corpus = Preprocessor(config).load()
    if kind == "reference":
        arrays = one_hot_arrays(corpus)
    else:
        arrays = [teacher_forcing(corpus.train_sequences()[1]), teacher_forcing(corpus.val_target)]
    peak = memory_status("VmHWM")
    print(json.dumps({"megabytes": (peak - baseline) / 1024, "pairs": corpus.train_pairs + len(corpus.val_source)}))
    del arrays


def memory_status(field: str) -> int:
    """A memory figure of this process in kB from /proc/self/status (Linux): VmRSS now, VmHWM the peak.

    Unlike getrusage's ru_maxrss, VmHWM starts afresh in a new program, not at the size of the parent
    that forked it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def peak_megabytes(command: list[str]) -> float:
    """The peak resident memory of `command`, measured by a small fresh process whose only child it is
    (a child's ru_maxrss starts at its parent's size when forked, so the parent must be small)."""
    measure = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    measure += "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    result = subprocess.run([sys.executable, "-c", measure, *command], capture_output=True, text=True, check=True)
    return int(result.stdout) / 1024


def compare_training(epochs: int, workspace: Path, pairs: int = PAIRS, latent_dim: int = LATENT_DIM) -> None:
    import keras
    from keras import layers

    from sequencer import Trainer

    config = config_for(workspace, pairs, epochs, latent_dim)
    corpus = Preprocessor(config).load()
    val_input, val_target = teacher_forcing(corpus.val_target)

    val_ids = [pad_ids(list(corpus.val_source)), pad_ids(list(val_input))]
    val_targets = pad_ids(list(val_target))

    def masked_loss(probabilities):
        """Mean cross-entropy over the real characters of the validation targets."""
        real = val_targets != 0
        chosen = np.take_along_axis(probabilities[:, : val_targets.shape[1]], val_targets[..., None], axis=-1)[..., 0]
        return float(-np.log(np.maximum(chosen[real], 1e-12)).mean())

    class Measure(keras.callbacks.Callback):
        def __init__(self, predict):
            super().__init__()
            self.predict, self.seconds, self.val_loss = predict, [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.started)
            self.val_loss.append(masked_loss(self.predict(self.model)))

    # The reference, as in the original example.
    encoder_data, decoder_data, target_data = one_hot_arrays(corpus)
    keras.utils.set_random_seed(config.seed)
    encoder_inputs = keras.Input(shape=(None, encoder_data.shape[2]))
    _, state_h, state_c = layers.LSTM(latent_dim, return_state=True)(encoder_inputs)
    decoder_inputs = keras.Input(shape=(None, decoder_data.shape[2]))
    decoder_outputs, _, _ = layers.LSTM(latent_dim, return_sequences=True, return_state=True)(
        decoder_inputs, initial_state=[state_h, state_c]
    )
    outputs = layers.Dense(decoder_data.shape[2], activation="softmax")(decoder_outputs)
    reference = keras.Model([encoder_inputs, decoder_inputs], outputs)
    reference.compile(optimizer="rmsprop", loss="categorical_crossentropy", metrics=["accuracy"])
    n_val = len(corpus.val_source)
    val_one_hot = [encoder_data[-n_val:], decoder_data[-n_val:]]
    reference_measure = Measure(lambda model: model.predict(val_one_hot, verbose=0, batch_size=256))
    reference.fit(
        [encoder_data, decoder_data],
        target_data,
        batch_size=BATCH_SIZE,
        epochs=epochs,
        validation_split=0.2,
        callbacks=[reference_measure],
        verbose=0,
    )

    project_measure = Measure(lambda model: model.predict(val_ids, verbose=0, batch_size=256))
    Trainer(config, [project_measure]).train(corpus)

    print("| epoch | reference s | project s | project / reference | reference val loss | project val loss |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for epoch in range(epochs):
        r, p = reference_measure.seconds[epoch], project_measure.seconds[epoch]
        rl, pl = reference_measure.val_loss[epoch], project_measure.val_loss[epoch]
        print(f"| {epoch + 1} | {r:.1f} | {p:.1f} | {p / r:.2f} | {rl:.4f} | {pl:.4f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--skip-full-training", action="store_true", help="skip the full-corpus training epoch")
    parser.add_argument("--memory-only", action="store_true", help="only the memory measurements")
    parser.add_argument("--prepare", choices=["reference", "project"], help=argparse.SUPPRESS)
    parser.add_argument("--pairs", type=int, default=PAIRS, help=argparse.SUPPRESS)
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    # What --smoke changes that has no flag: the reference's width, and what is measured in fresh processes.
    parser.set_defaults(latent_dim=LATENT_DIM, memory_pairs=[PAIRS, 0], full_training_flags=[])
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.pairs)
        return
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")

    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(
        f"{args.pairs:,} pairs, latent_dim {args.latent_dim}, batch size {BATCH_SIZE}, rmsprop; "
        "validation: the same 20%"
    )
    if not args.memory_only:
        compare_training(args.epochs, workspace, args.pairs, args.latent_dim)

    print("\n| data preparation | pairs | reference MB | project MB | project / reference |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for pairs in args.memory_pairs:
        measured = {}
        for kind in ("reference", "project"):
            command = [sys.executable, __file__, "--prepare", kind, "--pairs", str(pairs)]
            measured[kind] = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        r, p = measured["reference"]["megabytes"], measured["project"]["megabytes"]
        label = f"first {pairs:,}" if pairs else "full corpus"
        print(f"| {label} | {measured['project']['pairs']:,} | {r:,.0f} | {p:,.1f} | {p / r:.4f} |")

    if not args.skip_full_training:
        command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--num_samples", "0", "--epochs", "1"]
        command += ["--model_dir", str(workspace / "full"), *args.full_training_flags]
        started = time.perf_counter()
        peak = peak_megabytes(command)
        seconds = time.perf_counter() - started
        print(f"\nfull corpus, one epoch with scripts/train.py: {seconds:.0f} s, peak {peak:,.0f} MB")


if __name__ == "__main__":
    main()
