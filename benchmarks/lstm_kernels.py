#!/usr/bin/env python3
"""Cost of one LSTM training step on this machine, by kernel: is there a cheaper one than Keras'?

Times a forward and backward pass over one batch shaped like a bucketed batch of the default
config (batch 64, 36 time steps, 80 one-hot inputs, 256 units) with Keras' LSTM layer, with the
same layer compiled by XLA, and with TensorFlow's fused `BlockLSTMV2` kernel. Each is timed twice,
interleaved, as the mean of 20 steps after a warm-up.

    python benchmarks/lstm_kernels.py          # under a minute
    python benchmarks/lstm_kernels.py --smoke  # a tiny batch, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sequencer.cli import import_tensorflow

import_tensorflow()  # without TensorFlow's start-up lines, as the scripts do

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# The batch timed, and the steps timed per round.
SIZES = {"batch": 64, "steps": 36, "inputs": 80, "units": 256, "repeats": 20}
# --smoke: these in place of SIZES, to check in seconds that the benchmark runs (tests/test_benchmarks.py).
SMOKE = {"batch": 4, "steps": 5, "inputs": 8, "units": 8, "repeats": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny batch, to check that it runs (numbers meaningless)"
    )
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else SIZES
    batch, steps, inputs_size, units, repeats = (sizes[key] for key in ("batch", "steps", "inputs", "units", "repeats"))
    if args.smoke:
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")

    inputs = tf.constant(np.random.default_rng(0).random((batch, steps, inputs_size), dtype=np.float32))
    time_major = tf.transpose(inputs, [1, 0, 2])
    lstm = keras.layers.LSTM(units, return_sequences=True)
    lstm(inputs)
    kernel = tf.Variable(tf.random.normal([inputs_size + units, 4 * units]) * 0.05)
    bias = tf.Variable(tf.zeros([4 * units]))

    def keras_step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(lstm(inputs))
        return tape.gradient(loss, lstm.trainable_variables)

    def fused_step():
        zeros, peephole = tf.zeros([batch, units]), tf.zeros([units])
        with tf.GradientTape() as tape:
            outputs = tf.raw_ops.BlockLSTMV2(
                seq_len_max=tf.constant(steps, tf.int64),
                x=time_major,
                cs_prev=zeros,
                h_prev=zeros,
                w=kernel,
                wci=peephole,
                wcf=peephole,
                wco=peephole,
                b=bias,
                cell_clip=0.0,
                use_peephole=False,
            )
            loss = tf.reduce_sum(outputs.h)
        return tape.gradient(loss, [kernel, bias])

    kernels = {
        "keras LSTM": tf.function(keras_step),
        "keras LSTM, XLA": tf.function(keras_step, jit_compile=True),
        "BlockLSTMV2 (fused)": tf.function(fused_step),
    }
    timings: dict[str, list[float]] = {name: [] for name in kernels}
    for _ in range(2):
        for name, step in kernels.items():
            step()
            started = time.perf_counter()
            for _ in range(repeats):
                step()
            timings[name].append(1000 * (time.perf_counter() - started) / repeats)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")
    print(f"batch {batch}, {steps} steps, {inputs_size} inputs, {units} units; forward and backward")
    print("| kernel | ms per step (two rounds) | × keras LSTM |")
    print("| --- | --- | ---: |")
    reference = min(timings["keras LSTM"])
    for name, values in timings.items():
        print(f"| {name} | {' / '.join(f'{value:.1f}' for value in values)} | {min(values) / reference:.2f} |")


if __name__ == "__main__":
    main()
