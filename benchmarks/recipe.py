#!/usr/bin/env python3
"""The training recipe, ablated: batches of pairs or of tokens, gradient accumulation, checkpoint averaging.

The Transformer on subwords (configs/transformer.txt as shipped) trains four times on the same
shipped pairs, with the same held-out test split (by source sentence) and validation split, for
the same wall-clock budget each:

    (a) batches of batch_size pairs (the config's);
    (b) batches of tokens, batch_tokens set so that a batch holds as many pairs on average as (a);
    (c) (b) with gradients accumulated over --accumulate batches (warm-up as long in batches);
    (d) (c)'s run with its last --average snapshots of the weights, taken every --average-every
        optimizer updates (average_every), averaged at the end (--average-every 0: the last epoch
        checkpoints);
    (e) (c) with an exponential moving average of the weights (ema_decay=--ema-decay) in place
        of the averaging of (d): its best epoch's average is what (e) scores.

(d) is not a run of its own: averaging changes nothing in training, so the run of (c) keeps its last
snapshots (average_last) and (c)'s row scores its best single epoch, (d)'s row the average, on
the same training time. Each row gives BLEU, chrF and exact matches on the test split (as the
Trainer's end-of-training evaluation scores them, greedy), the padding fraction of an epoch's
batches (source and target positions that hold padding), the real tokens per second of training
(source and target tokens, markers included, over the whole epochs after the first, whose time
includes tracing), and the average pairs per batch. With the default 25 minutes the
Transformer sees 5 to 7 epochs; (c)'s have about 520 updates each, so its 5 snapshots 100 updates
apart span the last one. (a) and (b) average too, as the shipped config does, but their rows
score their best epoch. A second table scores the averages of the last 2, 3, ... snapshots
(--averages-of RUN does only that, on a run (c) left).

    python benchmarks/recipe.py                   # 4 x 25 minutes of training on 2 CPU cores
    python benchmarks/recipe.py --minutes 2       # a quick look
    python benchmarks/recipe.py --smoke           # tiny models, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from sequencer.cli import import_tensorflow  # noqa: E402

import_tensorflow()  # without TensorFlow's start-up lines, as the scripts do

import numpy as np  # noqa: E402
from quality import TimeBudget  # noqa: E402

from sequencer import Preprocessor, Trainer, batchers, load_config  # noqa: E402
from sequencer.averaging import average_weights, averaging_sources, saved_weights  # noqa: E402
from sequencer.checkpoints import MODEL_FILE, load_model  # noqa: E402
from sequencer.errors import SequencerError  # noqa: E402
from sequencer.evaluation import EVAL_FILE  # noqa: E402
from sequencer.runs import METRICS_FILE, SUMMARY_FILE, TEST_FILE, load_run  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402
from sequencer.translation import Translator  # noqa: E402

CONFIG_FILE = ROOT / "configs" / "transformer.txt"
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# every variant a tiny Transformer on the toy corpus for 3 epochs of 9 batches of 32 pairs (the time budget is not
# reached; the second epoch gives tokens/s), (c) keeping snapshots 2 updates apart so that (d) averages two,
# translations of at most 10 tokens.
SMOKE = {
    "minutes": 2.0,
    "average": 2,
    "average_every": 2,
    "train_flags": {
        "train_dir": str(ROOT / "tests" / "data" / "train"),
        "epochs": "3",
        "batch_size": "32",
        "warmup_steps": "8",
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "num_layers": "1",
        "subword_vocab": "400",
        "max_output_len": "10",
    },
}


def tokens_for(lengths: np.ndarray, pairs_per_batch: float) -> int:
    """The batch_tokens whose batches hold `pairs_per_batch` pairs on average (the nearest from below)."""
    batcher = batchers.get("bucketed")()
    low, high = 1, int(batchers.pair_tokens(lengths).max() * pairs_per_batch * 4)
    while low < high:
        middle = (low + high + 1) // 2
        if len(lengths) / len(batcher.batches(lengths, 1, None, batch_tokens=middle)) <= pairs_per_batch:
            low = middle
        else:
            high = middle - 1
    return low


def train(key: str, flags: dict[str, str], seconds: float, corpus) -> tuple[Path, dict]:
    """Train one variant for `seconds`; its run folder and what its epochs measured."""
    config = load_config(CONFIG_FILE, {**flags, "run_name": f"recipe-{key}"}, environ={})
    run_dir = Trainer(config, [TimeBudget(seconds)], progress="none").train(corpus)
    summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    with open(run_dir / METRICS_FILE, newline="") as stream:
        epochs = list(csv.DictReader(stream))
    lengths = corpus.train_lengths()
    plan = batchers.get(config.batcher)().batches(
        lengths, config.batch_size, np.random.default_rng([config.seed, 0]), batch_tokens=config.batch_tokens
    )
    real_tokens = int(lengths[:, 0].sum() + lengths[:, 1].sum() + len(lengths))
    speeds = [real_tokens / float(row["epoch_seconds"]) for row in epochs[1:-1]]  # whole epochs after the first
    return run_dir, {
        "epochs": f"{summary['epochs_completed']} ({summary['best_epoch']})",
        "padding": batchers.padding_fraction(lengths, plan),
        "pairs_per_batch": len(lengths) / len(plan),
        "tokens_per_second": float(np.mean(speeds)) if speeds else float("nan"),
        "averaging": summary.get("averaging"),
    }


def test_scores(run_dir: Path, model_file: str, corpus) -> dict:
    """The test scores of one model file of a run: eval.json's for model.keras, the same evaluation for another."""
    if model_file == MODEL_FILE:
        return json.loads((run_dir / EVAL_FILE).read_text())[TEST_FILE]
    run = load_run(run_dir)
    run = dataclasses.replace(run, model=load_model(run_dir / model_file, run.config))
    scores, _ = Translator(run).evaluate(corpus.test_pairs)
    return scores


def best_and_averaged(averaging: dict | None) -> tuple[str, str | None]:
    """The files of a run that hold its best single epoch and the average of its last checkpoints."""
    if not averaging:  # fewer than two checkpoints: nothing was averaged
        return MODEL_FILE, None
    return averaging["files"]["best_epoch"], averaging["files"]["averaged"]


def averages_table(run_dir: Path, corpus) -> str:
    """Test scores of the average of the last n checkpoints (or snapshots) the run kept, for every n from 2 on."""
    run = load_run(run_dir)
    sources = averaging_sources(run_dir, run.config)
    checkpoints = {source.name: saved_weights(source, run.config) for source in sources}
    rows = []
    for n in range(2, len(sources) + 1):
        last = [source.name for source in sources[-n:]]
        model = load_model(run_dir / MODEL_FILE, run.config)  # the architecture; its weights are replaced
        model.set_weights(average_weights({name: checkpoints[name] for name in last}))
        scores, _ = Translator(dataclasses.replace(run, model=model)).evaluate(corpus.test_pairs)
        name = f"last {n} ({last[0]} to {last[-1]})"
        rows.append([name, f"{scores['bleu']:.1f}", f"{scores['chrf']:.1f}", f"{scores['exact_match']:.1f}"])
    return markdown_table(["average of", "BLEU", "chrF", "exact %"], rows, numeric=[False, True, True, True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=25.0, help="training time per run (default 25)")
    parser.add_argument("--accumulate", type=int, default=2, help="batches per update in (c) and (d) (default 2)")
    parser.add_argument("--average", type=int, default=5, help="snapshots averaged in (d) (default 5)")
    parser.add_argument(
        "--average-every",
        type=int,
        default=100,
        help="optimizer updates between the snapshots of (d) (default 100; 0: epoch checkpoints)",
    )
    parser.add_argument(
        "--only", nargs="+", choices=list("abcde"), default=list("abcde"), help="variants (d: of c's run; default: all)"
    )
    parser.add_argument(
        "--ema-decay", type=float, default=0.999, help="ema_decay of (e) (default 0.999: about a thousand batches)"
    )
    parser.add_argument(
        "--averages-of",
        metavar="RUN",
        type=Path,
        help="train nothing: score the averages of the last 2, 3, ... snapshots (or checkpoints) of a run (c) left",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny models, to check that it runs (numbers meaningless)")
    parser.set_defaults(train_flags={})  # config keys changed for every variant
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.averages_of:
        try:
            run = load_run(args.averages_of)
        except SequencerError as error:  # not a run folder: one line, no traceback
            print(f"--averages-of: {error}", file=sys.stderr)
            sys.exit(2)
        corpus = Preprocessor(run.config).load()
        print(averages_table(args.averages_of, corpus))
        return

    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-recipe-"))
    shared = {"model_dir": str(workspace), "epochs": "1000", "early_stopping_patience": "0", "beam_width": "1"}
    shared.update(args.train_flags)
    base = load_config(CONFIG_FILE, shared, environ={})
    corpus = Preprocessor(base).load()
    lengths = corpus.train_lengths()
    tokens = str(tokens_for(lengths, base.batch_size))
    warmup = str(max(1, base.warmup_steps // args.accumulate))  # as many batches of warm-up as (a) and (b)
    accumulated = {"batch_tokens": tokens, "accumulate_steps": str(args.accumulate), "warmup_steps": warmup}
    averaging = {"average_last": str(args.average), "average_every": str(args.average_every)}
    apart = f"{args.average_every} updates apart" if args.average_every else "epoch checkpoints"
    variants = {
        "a": ("(a) pairs", {}),
        "b": ("(b) tokens", {"batch_tokens": tokens}),
        "c": (f"(c) tokens, accumulate {args.accumulate}", {**accumulated, **averaging}),
        "e": (
            f"(e) (c), moving average {args.ema_decay:g}",
            {**accumulated, "ema_decay": str(args.ema_decay), "average_last": "0", "average_every": "0"},
        ),
    }
    results = []
    for key, (name, flags) in variants.items():
        if key not in args.only and not (key == "c" and "d" in args.only):
            continue
        run_dir, measured = train(key, {**shared, **flags}, 60 * args.minutes, corpus)
        best_file, averaged_file = best_and_averaged(measured["averaging"])
        if key in args.only:
            results.append({"name": name, **measured, **test_scores(run_dir, best_file, corpus)})
        if key == "c" and "d" in args.only and averaged_file:
            name = f"(d) (c), average last {len(measured['averaging']['checkpoints'])}, {apart}"
            results.append({"name": name, "run": run_dir, **measured, **test_scores(run_dir, averaged_file, corpus)})
        elif key == "c" and "d" in args.only:
            logging.warning("(d): fewer than two snapshots in %s, nothing to average (train longer)", run_dir)
    if not results:
        sys.exit("no results: nothing was trained long enough to average")

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(
        f"model: {CONFIG_FILE.relative_to(ROOT)}; {len(lengths)} training pairs; budget {args.minutes:g} minutes "
        f"each; batch_tokens={tokens} (about {base.batch_size} pairs a batch); test: {results[0]['sentences']} "
        f"sources, {results[0]['references']} references"
    )
    header = ["variant", "epochs (best)", "pairs/batch", "padding", "tokens/s", "BLEU", "chrF", "exact %"]
    rows = [
        [
            result["name"],
            result["epochs"],
            f"{result['pairs_per_batch']:.1f}",
            f"{result['padding']:.3f}",
            f"{result['tokens_per_second']:,.0f}",
            f"{result['bleu']:.1f}",
            f"{result['chrf']:.1f}",
            f"{result['exact_match']:.1f}",
        ]
        for result in results
    ]
    print(markdown_table(header, rows, numeric=[False] + [True] * 7))
    for result in results:
        if result["name"].startswith("(d)"):
            record = result["averaging"]
            print(
                f"{result['name']}: average of {', '.join(record['checkpoints'])}: {record['metric']} "
                f"{record['averaged']:.4f} against the best epoch's {record['best_epoch']:.4f}; "
                f"model.keras holds the {record['model.keras']}"
            )
            print(f"test scores of averages of fewer of its checkpoints ({result['run']}):")
            print(averages_table(result["run"], corpus))
    print(f"runs: {workspace}")


if __name__ == "__main__":
    main()
