#!/usr/bin/env python3
"""Back-translation (issue 31): does training on back-translated monolingual French help, at equal time?

The shipped pairs (training_files/fra.txt, 74,350 English→French pairs, sorted by English
length) are split by English source sentence, every translation of a source going the same way,
in an order drawn with --split-seed:

- the test: source sentences drawn from across the corpus until they hold --test-pairs pairs
  (every French translation of a source is one of its references); no test source is in the
  other two parts;
- the "monolingual" part: further sources until they hold --monolingual-share of the remaining
  pairs; only their French side is used, each distinct sentence once, less any that is a test
  reference (as a synthetic pair's target it would be a test reference trained on, which the
  parallel-only system could not have; real pairs with other sources may hold test references
  in both systems alike);
- the parallel pairs: the rest.

The workflow of scripts/backtranslate.py, run in-process through the same functions:

1. the reverse model: --config (configs/transformer.txt) with reverse=true, French to English,
   trained on the parallel pairs for --reverse-minutes (max_minutes) with the first seed; its
   training time is reported but is not part of the forward models' budget (a user trains it
   once, and may reuse it). Its own chrF and BLEU, greedy, on the test pairs turned round (the
   French references as sources, the English source as reference);
2. the synthetic pairs: `write_synthetic_pairs` with the script's own translator
   (`reverse_translator`: decoding=sample, the config's temperature 1, top_k 0, top_p 1, its
   decode_batch_size and seed, one sample per sentence), every synthetic source tagged "<bt> ";
   the sentences per second include the tracing of the sampling loop;
3. for each of --seeds: (a) the forward Transformer of --config on the parallel pairs alone, and
   (b) on the parallel pairs and the synthetic ones (`forward_config`, one corpus, no weight, as the
   script trains by default), each for the same --minutes of training (max_minutes; epochs
   unbounded and no early stopping, so that the budget alone ends training). Everything else is
   the config's: its validation split (5%, drawn by a hash of each pair with the seed, so (a) and
   (b) validate on the same real pairs, (b) on synthetic ones as well, as the script's forward run
   does), its weight averaging, and its SentencePiece model, trained on each run's own pairs.

Each final model (the best epoch or the average, as the config picks) translates the test sources
greedily, in batches of --batch-size, and is scored on all their references (BLEU, chrF). The
summary gives each seed's chrF difference (b) − (a) and their mean, whatever their sign, with the
seed-to-seed spread of each system for the scale of the noise. One reverse model and one set of
synthetic pairs serve both seeds: the seeds vary the forward runs only (initial weights, batch
order, validation draw).

    python benchmarks/backtranslation.py                # about 1 h 45 min on 2 CPU cores, 1 h 35 min of it training
    python benchmarks/backtranslation.py --minutes 10 --reverse-minutes 10    # about 55 minutes
    python benchmarks/backtranslation.py --smoke        # a tiny run, to check that it runs (numbers meaningless)

The full run's time: 4 forward runs of --minutes (two seeds, (a) and (b) each) and one reverse run
of --reverse-minutes, plus about 5 minutes of preparation (a SentencePiece model and the shards per
run), back-translation (about 20,000 sentences) and scoring. The defaults, 20 minutes per forward
run (at the speed of benchmarks/quality.py's Transformer, about a dozen passes over the parallel
pairs, fewer over both) and 15 for the reverse model, keep the whole under 2 hours. --smoke runs
the same code path on a tiny model (see SMOKE).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import random
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
from sequencer.backtranslation import Synthetic, forward_config, write_synthetic_pairs  # noqa: E402
from sequencer.config import Config  # noqa: E402
from sequencer.data import read_pairs  # noqa: E402
from sequencer.evaluation import ReferenceSet  # noqa: E402
from sequencer.runs import load_run, load_summary  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402
from sequencer.translation import Translator  # noqa: E402

CORPUS = ROOT / "training_files" / "fra.txt"
TRANSFORMER = ROOT / "configs" / "transformer.txt"
SCRIPT = ROOT / "scripts" / "backtranslate.py"  # its reverse_translator makes the synthetic pairs here too
TAG = "<bt> "  # scripts/backtranslate.py's default --tag
SYSTEMS = ("(a) parallel only", "(b) parallel + back-translated")
Pair = tuple[str, str]
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# a tiny Transformer on a few hundred shipped pairs, trained for a few seconds each (the first batch, which
# traces, ends past them), translations of at most 10 tokens, a few dozen test pairs.
SMOKE = {
    "train_flags": {
        "model_dim": "16",
        "num_heads": "2",
        "ffn_dim": "32",
        "num_layers": "1",
        "max_output_len": "10",
    },
    "corpus_pairs": 800,
    "test_pairs": 40,
    "minutes": 0.05,
    "reverse_minutes": 0.05,
    "batch_size": 16,
}


def split(pairs: list[Pair], args: argparse.Namespace) -> tuple[list[Pair], list[str], list[Pair], int]:
    """The test pairs, the monolingual French sentences, the parallel pairs (in corpus order), and
    how many pairs the monolingual sentences came from; by source sentence, in an order drawn with
    --split-seed."""
    by_source: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_source.setdefault(pair[0], []).append(pair)
    order = list(by_source)
    random.Random(args.split_seed).shuffle(order)
    if args.corpus_pairs:  # a random part of the corpus only (--smoke)
        order = take(order, by_source, args.corpus_pairs)
    test_sources = take(order, by_source, args.test_pairs)
    rest = order[len(test_sources) :]
    rest_pairs = sum(len(by_source[source]) for source in rest)
    monolingual_sources = take(rest, by_source, round(args.monolingual_share * rest_pairs))
    parallel_sources = set(rest[len(monolingual_sources) :])
    test = [pair for source in test_sources for pair in by_source[source]]
    references = {target for _, target in test}
    monolingual_pairs = [pair for source in monolingual_sources for pair in by_source[source]]
    french = dict.fromkeys(target for _, target in monolingual_pairs if target not in references)
    parallel = [pair for pair in pairs if pair[0] in parallel_sources]
    if not test or not french or not parallel:
        raise SystemExit(
            f"{CORPUS}: --test-pairs {args.test_pairs} and --monolingual-share {args.monolingual_share:g} "
            "leave a part empty"
        )
    return test, list(french), parallel, len(monolingual_pairs)


def take(order: list[str], by_source: dict[str, list[Pair]], count: int) -> list[str]:
    """The first sources of `order` that hold at least `count` pairs between them (none for 0)."""
    taken, held = [], 0
    for source in order:
        if held >= count:
            break
        taken.append(source)
        held += len(by_source[source])
    return taken


def write_pairs(path: Path, pairs: list[Pair]) -> Path:
    path.write_text("".join(f"{source}\t{target}\n" for source, target in pairs), encoding="utf-8")
    return path


def train(config: Config) -> Path:
    """A new run trained as `config` says: its folder."""
    return Trainer(config, progress="none").train(Preprocessor(config).load())


def scores(run_dir: Path, test: list[Pair], batch_size: int) -> dict:
    """BLEU and chrF of the run's greedy translations of the test sources, with its epochs and training time."""
    run = load_run(run_dir)
    settings = run.config.replace(decoding="search", beam_width=1, n_best=1, decode_batch_size=batch_size)
    found, _ = Translator(run, settings).evaluate(test)
    record = load_summary(run_dir)
    return {**found, "epochs": record["epochs_completed"], "seconds": record["seconds"]}


def reverse_translator(reverse_dir: Path, config: Config) -> Translator:
    """scripts/backtranslate.py's translator of the reverse run: decoding=sample with `config`'s Prediction keys."""
    spec = importlib.util.spec_from_file_location("backtranslate_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script.reverse_translator(reverse_dir, config, False)


def back_translate(reverse_dir: Path, config: Config, french: list[str], folder: Path) -> tuple[Path, Synthetic, float]:
    """The synthetic pairs, written as the script writes them: their file, counts and seconds."""
    monolingual = folder / "monolingual.fr.txt"
    monolingual.write_text("".join(f"{sentence}\n" for sentence in french), encoding="utf-8")
    synthetic = folder / "backtranslated.txt"
    translator = reverse_translator(reverse_dir, config)
    started = time.perf_counter()
    made = write_synthetic_pairs(translator, monolingual, synthetic, TAG)
    seconds = time.perf_counter() - started
    return synthetic, made, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=TRANSFORMER, help="the config of every model trained")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time of each forward run (default 20)")
    parser.add_argument(
        "--reverse-minutes", type=float, default=15.0, help="training time of the reverse model (default 15)"
    )
    parser.add_argument(
        "--monolingual-share",
        type=float,
        default=0.3,
        help="share of the non-test pairs whose French side is the monolingual text (default 0.3)",
    )
    parser.add_argument("--test-pairs", type=int, default=1000, help="pairs held out for the test (default 1000)")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[1, 2], help="seeds of the forward runs, one (a) and (b) each"
    )
    parser.add_argument("--split-seed", type=int, default=1, help="seed of the test/monolingual/parallel split")
    parser.add_argument("--corpus-pairs", type=int, default=0, help="use about this many shipped pairs (0: all)")
    parser.add_argument("--batch-size", type=int, default=64, help="decode_batch_size of the scoring (default 64)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    parser.set_defaults(train_flags={})  # config keys changed for every model trained here
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    if not 0 < args.monolingual_share < 1:
        parser.error("--monolingual-share must be between 0 and 1")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must differ")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-backtranslation-"))
    data = workspace / "data"
    data.mkdir()

    pairs = read_pairs(CORPUS)[0]
    test, french, parallel, monolingual_pairs = split(pairs, args)
    write_pairs(data / "test.txt", test)
    parallel_file = write_pairs(data / "parallel.txt", parallel)

    def config(seed: int, name: str, minutes: float) -> Config:
        flags = {
            "train_dir": str(parallel_file),
            "model_dir": str(workspace / "models"),
            "run_name": name,
            "num_samples": "0",
            "test_split": "0",  # the test is this benchmark's own
            "epochs": "100000",  # the time budget alone ends training
            "early_stopping_patience": "0",
            "max_minutes": str(minutes),
            "seed": str(seed),
            **args.train_flags,
        }
        return load_config(args.config, flags, environ={})

    first = config(args.seeds[0], "forward", args.minutes)
    reverse_dir = train(first.replace(reverse=True, run_name="reverse", max_minutes=args.reverse_minutes))
    reverse = scores(reverse_dir, [(target, source) for source, target in test], args.batch_size)
    synthetic, made, seconds = back_translate(reverse_dir, first, french, data)

    results = []
    for seed in args.seeds:
        base = config(seed, f"parallel-seed{seed}", args.minutes)
        backtranslated = forward_config(base.replace(run_name=f"backtranslated-seed{seed}"), synthetic, None)
        systems = [(base, f"{len(parallel):,}"), (backtranslated, f"{len(parallel):,} + {made.pairs:,}")]
        for system, (settings, count) in zip(SYSTEMS, systems):
            results.append(
                {"system": system, "seed": seed, "pairs": count, **scores(train(settings), test, args.batch_size)}
            )

    test_sources = len(ReferenceSet.from_pairs(test).sources)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(f"Keras {keras.__version__}; config: {args.config}; runs and data: {workspace}")
    used = f" (about {args.corpus_pairs:,} of them used)" if args.corpus_pairs else ""
    print(
        f"data: {len(pairs):,} shipped pairs{used}, "
        f"split by source with --split-seed {args.split_seed}: test {len(test):,} pairs ({test_sources:,} sources), "
        f"monolingual {len(french):,} distinct French sentences (the French side of {monolingual_pairs:,} pairs, "
        f"test references left out), parallel {len(parallel):,} pairs"
    )
    print(
        f"reverse model (French → English, reverse=true, on the parallel pairs, seed {args.seeds[0]}): "
        f"{reverse['epochs']} epoch(s) in {reverse['seconds'] / 60:.1f} min of training, not counted in the forward "
        f"budget; on the test pairs turned round, greedy: BLEU {reverse['bleu']:.1f}, chrF {reverse['chrf']:.1f}"
    )
    print(
        f"back-translation: {made.pairs:,} synthetic pairs ({made.empty} empty translations left out) from "
        f"{len(french):,} sentences in {seconds:.1f} s, {len(french) / seconds:,.1f} sentences/s, by sampling "
        f"(temperature 1, top_k 0, top_p 1), sources tagged {TAG.strip()!r}"
    )
    print(
        f"forward runs: {args.minutes:g} minutes of training each (max_minutes), scored greedily on the test "
        f"({test_sources:,} sources, every reference counted), batches of {args.batch_size}\n"
    )
    header = ["system", "seed", "pairs", "epochs", "minutes", "BLEU", "chrF"]
    rows = [
        [
            result["system"],
            result["seed"],
            result["pairs"],
            result["epochs"],
            f"{result['seconds'] / 60:.1f}",
            f"{result['bleu']:.1f}",
            f"{result['chrf']:.1f}",
        ]
        for result in results
    ]
    print(markdown_table(header, rows, numeric=[False, True, True, True, True, True, True]))

    print()
    summary(args.seeds, results)
    print(f"{time.monotonic() - started:.0f} s in all")


def summary(seeds: list[int], results: list[dict]) -> None:
    """The chrF differences (b) − (a), seed by seed and on average, whatever their sign."""
    by_seed = []
    for seed in seeds:
        a, b = (result for result in results if result["seed"] == seed)
        by_seed.append((seed, a, b))
    chrf = [b["chrf"] - a["chrf"] for _, a, b in by_seed]
    bleu = [b["bleu"] - a["bleu"] for _, a, b in by_seed]
    header = ["seed", "chrF (a)", "chrF (b)", "chrF (b) − (a)", "BLEU (b) − (a)"]
    rows = [
        [seed, f"{a['chrf']:.1f}", f"{b['chrf']:.1f}", f"{gain:+.1f}", f"{bleu_gain:+.1f}"]
        for (seed, a, b), gain, bleu_gain in zip(by_seed, chrf, bleu)
    ]
    chrf_of = [[result["chrf"] for result in results if result["system"] == name] for name in SYSTEMS]
    mean = [statistics.fmean(values) for values in chrf_of]
    rows.append(
        ["mean", f"{mean[0]:.1f}", f"{mean[1]:.1f}", f"{statistics.fmean(chrf):+.1f}", f"{statistics.fmean(bleu):+.1f}"]
    )
    print(markdown_table(header, rows, numeric=[False, True, True, True, True]))
    spreads = [max(values) - min(values) for values in chrf_of]
    print(
        f"\nback-translation at equal training time: mean chrF difference (b) − (a) {statistics.fmean(chrf):+.1f} "
        f"over {len(chrf)} seed(s) ({', '.join(f'{gain:+.1f}' for gain in chrf)}); (b) above (a) for "
        f"{sum(gain > 0 for gain in chrf)} of {len(chrf)}; seed-to-seed chrF spread: (a) {spreads[0]:.1f}, "
        f"(b) {spreads[1]:.1f}"
    )


if __name__ == "__main__":
    main()
