#!/usr/bin/env python3
"""Decoding with CTranslate2 against TensorFlow: the Transformer's speed, memory and quality, and predict.py's time.

On the Transformer of configs/transformer.txt, trained as benchmarks/quality.py trains it (all the
pairs, 5% held out by source for the test, --minutes of training), or on --run, a Transformer
run trained earlier (its test.txt gives the held-out pairs):

- the run is converted to two CTranslate2 exports, float32 and int8 (`sequencer.ctranslate.convert`);
- each backend, in a fresh process of its own, translates --sentences held-out sources in batches
  of --batch-size, greedily and with a beam of 4 (length penalty 0.6): TensorFlow (the run's
  model, `Translator`), CTranslate2 float32 and CTranslate2 int8. It prints sentences per second
  (the second pass over the sentences: the first traces TensorFlow's loops), the process' peak
  resident memory so far (VmHWM: the beam row includes the greedy pass before it) and the BLEU and
  chrF of the translations against every reference of each source;
- `scripts/predict.py -` translates --predict-lines lines (the held-out sources, repeated) greedily
  with each backend (the run, then each export with --export): the whole process' time, start-up
  included, as a user waits for it.

    python benchmarks/ctranslate_speed.py                          # 30 minutes of training, then ~15 minutes
    python benchmarks/ctranslate_speed.py --run models/transformer/RUN
    python benchmarks/ctranslate_speed.py --smoke                  # a tiny run, to check that it runs
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

from sequencer.text import markdown_table  # noqa: E402

BACKENDS = ("tensorflow", "ctranslate2 float32", "ctranslate2 int8")
BEAMS = (1, 4)
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# a tiny Transformer trained on the toy corpus for a few seconds (benchmarks/quality.py's smoke flags), a few
# sentences, predict.py on a few lines.
SMOKE = {"minutes": 0.05, "sentences": 16, "batch_size": 8, "predict_lines": 50}


def train_transformer(workspace: Path, minutes: float, smoke: bool) -> Path:
    """configs/transformer.txt's Transformer trained as benchmarks/quality.py trains it: its run folder."""
    import quality  # TensorFlow: in this process only when it trains

    flags = quality.SMOKE["train_flags"] if smoke else {}
    config_file, contender_flags = quality.CONTENDERS["transformer (subwords)"]
    shared = quality.shared_flags(workspace, "0", flags)
    return quality.train("transformer (subwords)", config_file, contender_flags, shared, 60 * minutes)["run"]


def convert_run(run_dir: Path, workspace: Path) -> dict[str, Path]:
    """The run as CTranslate2 exports, float32 and int8, by backend name."""
    from sequencer.cli import import_tensorflow

    import_tensorflow()
    from sequencer.ctranslate import convert
    from sequencer.runs import load_run

    run = load_run(run_dir)
    return {f"ctranslate2 {kind}": convert(run, workspace / f"ct2-{kind}", kind) for kind in ("float32", "int8")}


def held_out(run_dir: Path, count: int):
    """The first `count` distinct held-out sources of the run, with all their references."""
    from sequencer.data import read_pairs
    from sequencer.evaluation import ReferenceSet
    from sequencer.runs import TEST_FILE

    reference_set = ReferenceSet.from_pairs(read_pairs(run_dir / TEST_FILE)[0])
    return reference_set.sources[:count], reference_set.references[:count]


def measure(args: argparse.Namespace) -> None:
    """In a process of its own, one backend (--measure): a JSON line per beam width."""
    from sequencer.config import load_config
    from sequencer.evaluation import score

    sources, references = held_out(args.run, args.sentences)
    config = load_config(None, {"decode_batch_size": str(args.batch_size), "threads": str(args.threads)}, environ={})
    for beam_width in BEAMS:
        settings = config.replace(beam_width=beam_width, length_penalty=0.6)
        if args.measure == "tensorflow":
            from sequencer.cli import import_tensorflow

            import_tensorflow()
            from sequencer.devices import configure_device
            from sequencer.runs import load_run
            from sequencer.translation import Translator

            configure_device("cpu", args.threads)
            translator = Translator(load_run(args.run), settings)
        else:
            from sequencer.exports import open_export

            translator = open_export(args.export, settings)
        translator.translate(sources)  # TensorFlow traces its loops on the first pass
        started = time.perf_counter()
        found = translator.translate(sources)
        seconds = time.perf_counter() - started
        scores = score(found.best, references)
        status = Path("/proc/self/status").read_text().splitlines()
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        row = {"beam": beam_width, "rate": len(sources) / seconds, "peak_mb": peak / 1024}
        print(json.dumps({**row, "bleu": scores["bleu"], "chrf": scores["chrf"]}), flush=True)


def measure_in_a_process(args: argparse.Namespace, backend: str, export: Path | None) -> list[dict]:
    command = [sys.executable, __file__, "--measure", backend, "--run", str(args.run), "--threads", str(args.threads)]
    command += ["--sentences", str(args.sentences), "--batch-size", str(args.batch_size)]
    command += ["--export", str(export)] if export else []
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"measuring {backend} failed:\n{result.stderr[-3000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def predict_seconds(args: argparse.Namespace, lines: Path, model: list[str]) -> float:
    """The whole time of `scripts/predict.py -` on `lines`, greedily, with the run or export `model` names."""
    command = [sys.executable, str(ROOT / "scripts" / "predict.py"), *model, "--quiet", "--beam_width", "1"]
    command += ["--decode_batch_size", str(args.batch_size), "--threads", str(args.threads), "-"]
    started = time.perf_counter()
    with open(lines, "rb") as stdin:
        subprocess.run(command, stdin=stdin, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained Transformer run (default: train one)")
    parser.add_argument("--minutes", type=float, default=30.0, help="training time without --run (default 30)")
    parser.add_argument("--sentences", type=int, default=2000, help="held-out sources decoded (default 2000)")
    parser.add_argument("--batch-size", type=int, default=64, help="sentences decoded together (default 64)")
    parser.add_argument("--predict-lines", type=int, default=10000, help="lines predict.py translates (default 10000)")
    parser.add_argument("--threads", type=int, default=0, help="the threads key of every backend (default 0)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    parser.add_argument("--measure", choices=BACKENDS, help=argparse.SUPPRESS)  # the child process' backend
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)  # and its export folder
    args = parser.parse_args()
    if args.measure:
        measure(args)
        return
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-ctranslate-"))
    args.run = (args.run or train_transformer(workspace, args.minutes, args.smoke)).absolute()
    exports = convert_run(args.run, workspace)
    rows = {backend: measure_in_a_process(args, backend, exports.get(backend)) for backend in BACKENDS}
    sources, _ = held_out(args.run, args.sentences)
    lines = workspace / "lines.txt"
    lines.write_text("".join(sources[i % len(sources)] + "\n" for i in range(args.predict_lines)), encoding="utf-8")
    models = {"tensorflow": ["--run", str(args.run)]}
    models.update({name: ["--export", str(path)] for name, path in exports.items()})
    whole = {backend: predict_seconds(args, lines, model) for backend, model in models.items()}
    report(args, rows, whole)
    print(f"run: {args.run}; exports: {workspace}")


def report(args: argparse.Namespace, rows: dict[str, list[dict]], whole: dict[str, float]) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    print(f"decoding: {args.sentences} held-out sources, batches of {args.batch_size}, threads={args.threads}\n")
    reference = {row["beam"]: row["rate"] for row in rows["tensorflow"]}
    header = ["backend", "beam", "sentences/s", "× TensorFlow", "peak MB", "BLEU", "chrF"]
    table = [
        [backend, row["beam"], f"{row['rate']:.1f}", f"{row['rate'] / reference[row['beam']]:.2f}", *scores(row)]
        for backend, measured in rows.items()
        for row in measured
    ]
    print(markdown_table(header, table, numeric=[False] + [True] * 6))
    print(f"\npredict.py - on {args.predict_lines:,} lines, greedy, start-up included:\n")
    table = [[backend, f"{seconds:.1f}", f"{args.predict_lines / seconds:,.0f}"] for backend, seconds in whole.items()]
    print(markdown_table(["predict.py with", "seconds", "lines/s"], table, numeric=[False, True, True]))


def scores(row: dict) -> list[str]:
    return [f"{row['peak_mb']:.0f}", f"{row['bleu']:.1f}", f"{row['chrf']:.1f}"]


if __name__ == "__main__":
    main()
