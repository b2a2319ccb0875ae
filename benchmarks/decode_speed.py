#!/usr/bin/env python3
"""Decoding speed: the project's batched decoders against the original example's per-character loop.

On the same trained weights, in one run, it decodes sentences the model has not seen:

- reference: the original Keras example's greedy loop, one sentence at a time, `encoder.predict`
  once and `decoder.predict` once per output character (timed on --reference-sentences, as it
  is some thousand times slower; characters per second do not depend on how many sentences);
- greedy: the project's compiled batched greedy decoder, on --sentences;
- beam 4: the project's compiled batched beam search of width 4, on --sentences;

and prints decoded characters per second and the ratios to the reference. With --memory-lines N
it then translates an N-line file with `scripts/predict.py -` and reports that process' peak
resident memory. Without --run it first trains a model (latent_dim 256, 2 epochs, 10,000 pairs).

    python benchmarks/decode_speed.py                      # about 5 minutes on 2 CPU cores
    python benchmarks/decode_speed.py --memory-lines 1000000
    python benchmarks/decode_speed.py --smoke              # a tiny run, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
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
from keras import layers  # noqa: E402

from sequencer import Preprocessor, Trainer, load_config  # noqa: E402
from sequencer.data import read_pairs  # noqa: E402
from sequencer.runs import load_run  # noqa: E402
from sequencer.translation import Translator  # noqa: E402
from sequencer.vocabulary import END_ID, START_ID  # noqa: E402

TRAINED_PAIRS = 10000  # the model trained without --run reads the first 10,000 pairs; the sentences decoded follow
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# the model trained on the toy corpus, tiny, for one epoch, decoding at most 10 characters (the reference's
# loop takes 0.1 s per character); a few sentences; predict.py on a few lines.
SMOKE = {
    "train_flags": {
        "train_dir": str(ROOT / "tests" / "data" / "train"),
        "latent_dim": "16",
        "epochs": "1",
        "max_output_len": "10",
    },
    "sentences": 16,
    "reference_sentences": 2,
    "memory_lines": 50,
}


def reference_decoder(model: keras.Model, max_len: int):
    """The original example's inference: an encoder model and a one-step decoder model, `predict` per character."""
    source_ids = keras.Input((None,), dtype="int32")
    _, encoder_h, encoder_c = model.get_layer("encoder_lstm")(model.get_layer("source_one_hot")(source_ids))
    encoder = keras.Model(source_ids, [encoder_h, encoder_c])
    decoder_lstm = model.get_layer("decoder_lstm")
    token_input = keras.Input((1,), dtype="int32")
    state_inputs = [keras.Input((decoder_lstm.units,)), keras.Input((decoder_lstm.units,))]
    step_lstm = layers.LSTM(decoder_lstm.units, return_sequences=True, return_state=True)
    output, state_h, state_c = step_lstm(model.get_layer("target_one_hot")(token_input), initial_state=state_inputs)
    step_lstm.set_weights(decoder_lstm.get_weights())
    probabilities = model.get_layer("decoder_output")(output)
    decoder = keras.Model([token_input, *state_inputs], [probabilities, state_h, state_c])

    def decode(source_ids: np.ndarray) -> list[int]:
        states = encoder.predict(source_ids[None, :], verbose=0)
        token, output_ids = START_ID, []
        for _ in range(max_len):
            probabilities, *states = decoder.predict([np.array([[token]]), *states], verbose=0)
            token = int(np.argmax(probabilities[0, -1]))
            if token == END_ID:
                break
            output_ids.append(token)
        return output_ids

    return decode


def timed(function, *args):
    started = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="run folder to decode with (default: train one)")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--reference-sentences", type=int, default=40)
    parser.add_argument(
        "--memory-lines", type=int, default=0, help="also measure predict.py's peak memory on this many lines"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    parser.set_defaults(train_flags={"epochs": "2"})  # config.txt's keys changed for the model trained without --run
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")

    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-"))
    if args.run is None:
        config = load_config(flags={"model_dir": str(workspace / "models"), **args.train_flags}, environ={})
        args.run = Trainer(config).train(Preprocessor(config).load())
    run = load_run(args.run)
    pairs, _ = read_pairs(ROOT / "training_files" / "fra.txt", limit=TRAINED_PAIRS + args.sentences)
    sentences = [source for source, _ in pairs[TRAINED_PAIRS:]]  # after the first 10,000: not trained on

    greedy = Translator(run)
    beam = Translator(run, run.config.replace(beam_width=4))
    greedy.translate(sentences[:8])  # compile the loops before timing
    beam.translate(sentences[:8])
    greedy_out, greedy_seconds = timed(lambda: greedy.translate(sentences).best)
    beam_out, beam_seconds = timed(lambda: beam.translate(sentences).best)

    decode = reference_decoder(run.model, greedy.max_output_len)
    subset = sentences[: args.reference_sentences]
    decode(run.source_vocab.encode(subset[0]))  # warm up
    reference_ids, reference_seconds = timed(lambda: [decode(run.source_vocab.encode(s)) for s in subset])
    reference_out = [run.target_vocab.decode(ids) for ids in reference_ids]
    same = sum(a == b for a, b in zip(reference_out, greedy_out))

    def rate(outputs, seconds):
        return sum(map(len, outputs)) / seconds

    reference_rate = rate(reference_out, reference_seconds)
    rows = [
        ("reference (predict per character)", len(subset), reference_out, reference_seconds),
        ("greedy, batched, compiled", len(sentences), greedy_out, greedy_seconds),
        ("beam 4, batched, compiled", len(sentences), beam_out, beam_seconds),
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"
    print(f"machine: {machine}, Keras {keras.__version__}")
    print(f"run: {run.path}")
    print("| decoder | sentences | characters | seconds | characters/s | × reference |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, count, outputs, seconds in rows:
        characters, speed = sum(map(len, outputs)), rate(outputs, seconds)
        print(f"| {name} | {count} | {characters} | {seconds:.2f} | {speed:,.0f} | {speed / reference_rate:,.0f} |")
    print(f"greedy gives the reference's translation for {same} of {len(subset)} sentences")

    if args.memory_lines:
        big = workspace / "big.txt"
        with open(big, "w", encoding="utf-8") as stream:
            for index in range(args.memory_lines):
                stream.write(sentences[index % len(sentences)] + "\n")
        command = [sys.executable, str(ROOT / "scripts" / "predict.py"), "--run", str(run.path), "--quiet", "-"]
        started = time.perf_counter()
        with open(big, "rb") as source:
            subprocess.run(command, stdin=source, stdout=subprocess.DEVNULL, check=True)
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        speed = args.memory_lines / seconds
        print(f"predict.py on {args.memory_lines:,} lines: {seconds:.0f} s, {speed:,.0f} lines/s, peak {peak:,.0f} MB")


if __name__ == "__main__":
    main()
