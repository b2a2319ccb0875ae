#!/usr/bin/env python3
"""Corpora of any size: preparation and streamed training at 1x, 10x and 100x the shipped corpus.

The shipped 74,350 pairs are copied N times into one file, every copy after the first varied
(" (c)" after both sides of copy c) so that pairs stay distinct. For each size, in fresh
processes, with configs/transformer.txt:

1. preparation (scripts/prepare.py's work): seconds, pairs per second and peak resident memory
   (VmHWM), SentencePiece's training on its sample included;
2. training from the prepared shards, --steps updates: peak resident memory and tokens per second;
3. at 1x, the training speed of the streamed path against the in-memory path of --baseline (a
   commit before the prepared corpora, checked out into a temporary worktree), on the same first
   --pairs pairs, each for two epochs, in one run: the ratio of their second epochs' pairs/s;
4. with --quality-minutes, translation quality: the Transformer config on all shipped pairs, for
   that many minutes each, through each path, --runs times: chrF and BLEU on each run's held-out
   test pairs (each path draws its own test split, about 5% of the sources).

    python benchmarks/data_scale.py                         # about 20 minutes, without quality
    python benchmarks/data_scale.py --quality-minutes 15    # and 4 x 15 minutes of training
    python benchmarks/data_scale.py --smoke                 # tiny, to check that it runs
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

CORPUS = ROOT / "training_files" / "fra.txt"
CONFIG = ROOT / "configs" / "transformer.txt"
BASELINE = "cb6c22a"  # the last commit whose training read the whole corpus into memory
# Held-out splits small at every size, as docs/training.md advises for large corpora: each epoch
# validates on them, and the test pairs are read at the end of training only.
SPLITS = {"val_split": "0.001", "test_split": "0"}
SMOKE = {"scales": "1,2", "steps": 6, "pairs": 300, "copies_of": 3000, "quality_minutes": 0.0}

# Run in a fresh process (the sequencer of `root` importable): prepare or train, then print JSON
# with the process's peak resident memory.
CHILD = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from sequencer.cli import import_tensorflow
job, config_file, flags, minutes = sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), float(sys.argv[5])
from sequencer import Preprocessor, load_config
config = load_config(config_file, flags, environ={})
started = time.monotonic()
result = {}
if job == "prepare":
    corpus = Preprocessor(config).load()
    result = {"index": corpus.index}
else:
    import_tensorflow()
    import keras
    from sequencer import Trainer

    class Budget(keras.callbacks.Callback):  # both paths have it: stop at the first batch past the minutes
        def on_train_batch_end(self, batch, logs=None):
            if minutes and time.monotonic() - started > minutes * 60:
                self.model.stop_training = True

    corpus = Preprocessor(config).load()
    run_dir = Trainer(config, [Budget()], progress="none").train(corpus)
    result["run"] = str(run_dir)
result["seconds"] = time.monotonic() - started
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
result["peak_mb"] = int(status["VmHWM"].split()[0]) / 1024
print(json.dumps(result))
"""


def child(root: Path, job: str, flags: dict, config: Path = CONFIG, minutes: float = 0.0) -> dict:
    """Run CHILD in a fresh process with the sequencer of `root`; its JSON."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), job, str(config), json.dumps(flags), str(minutes)],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
    )
    if done.returncode:
        raise SystemExit(f"{job} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_corpus(folder: Path, copies: int, pairs: int) -> Path:
    """`copies` copies of the first `pairs` shipped pairs (0: all), copy c's sides followed by " (c)"."""
    lines = CORPUS.read_text(encoding="utf-8").splitlines()[: pairs or None]
    path = folder / f"corpus-{copies}x.txt"
    with open(path, "w", encoding="utf-8") as stream:
        for copy in range(copies):
            mark = f" ({copy})" if copy else ""
            for line in lines:
                source, target = line.split("\t")[:2]
                stream.write(f"{source}{mark}\t{target}{mark}\n")
    return path


def metrics(run: str) -> list[dict]:
    import csv

    with open(Path(run) / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def tokens_per_pair(index: dict) -> float:
    shards = [shard for corpus in index["corpora"] for shard in corpus["shards"]]
    pairs = sum(shard["pairs"] for shard in shards)
    return sum(shard["source_tokens"] + shard["target_tokens"] for shard in shards) / pairs


def scale_rows(args, workspace: Path) -> tuple[list[list], dict]:
    """Preparation and streamed training at each scale."""
    rows, peaks = [], {}
    for scale in (int(value) for value in args.scales.split(",")):
        corpus = make_corpus(workspace, scale, args.copies_of)
        size_mb = corpus.stat().st_size / 1e6
        flags = {"train_dir": str(corpus), "model_dir": str(workspace / f"models-{scale}x"), **SPLITS}
        prepared = child(ROOT, "prepare", flags)
        index = prepared["index"]
        pairs = sum(corpus["pairs"] for corpus in index["corpora"]) + index["valid"]["pairs"] + index["test_pairs"]
        steps = {"train_steps": str(args.steps), "steps_per_epoch": str(max(args.steps // 2, 1))}
        trained = child(ROOT, "train", {**flags, **steps, "average_last": "0", "average_every": "0"})
        last = metrics(trained["run"])[-1]
        tokens = float(last["samples_per_second"]) * tokens_per_pair(index)
        peaks[scale] = trained["peak_mb"]
        rows.append(
            [
                f"{scale}x",
                f"{pairs:,}",
                f"{size_mb:,.0f}",
                f"{prepared['seconds']:.1f}",
                f"{pairs / prepared['seconds']:,.0f}",
                f"{prepared['peak_mb']:,.0f}",
                sum(len(corpus["shards"]) for corpus in index["corpora"]),
                f"{trained['peak_mb']:,.0f}",
                f"{tokens:,.0f}",
            ]
        )
        corpus.unlink()
    return rows, peaks


def baseline_tree(workspace: Path, commit: str) -> Path:
    tree = workspace / "baseline"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True, capture_output=True
    )
    return tree


def throughput(args, workspace: Path, baseline: Path) -> list[list]:
    """Pairs per second of each path's second epoch, on the same first --pairs shipped pairs."""
    rows = []
    for name, root in (("in memory (baseline)", baseline), ("streamed from shards", ROOT)):
        flags = {
            "model_dir": str(workspace / f"speed-{len(rows)}"),
            "num_samples": str(args.pairs),
            "epochs": "2",
            "test_split": "0",
            "average_last": "0",
            "average_every": "0",
            "early_stopping_patience": "0",
        }
        run = child(root, "train", flags, root / "configs" / "transformer.txt")["run"]
        rows.append([name, f"{float(metrics(run)[-1]['samples_per_second']):,.1f}"])
    return rows


def quality(args, workspace: Path, baseline: Path) -> list[list]:
    """chrF and BLEU of the Transformer config after --quality-minutes of training (data preparation
    included: the budget starts with the process), each path, --runs times."""
    rows = []
    for run_number in range(args.runs):
        for name, root in (("in memory (baseline)", baseline), ("streamed from shards", ROOT)):
            flags = {"model_dir": str(workspace / f"quality-{run_number}-{len(rows)}")}
            trained = child(root, "train", flags, root / "configs" / "transformer.txt", args.quality_minutes)
            scores = json.loads((Path(trained["run"]) / "eval.json").read_text())["test.txt"]
            rows.append([name, run_number + 1, f"{trained['seconds'] / 60:.1f}", scores["bleu"], scores["chrf"]])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,10,100", help="copies of the shipped corpus, comma-separated")
    parser.add_argument("--steps", type=int, default=200, help="updates each scale trains")
    parser.add_argument("--pairs", type=int, default=20000, help="pairs of the in-memory comparison")
    parser.add_argument("--copies-of", type=int, default=0, help="pairs of the shipped corpus to copy (0: all)")
    parser.add_argument("--baseline", default=BASELINE, help="the commit of the in-memory path")
    parser.add_argument("--quality-minutes", type=float, default=0.0, help="minutes of training per quality run")
    parser.add_argument("--runs", type=int, default=2, help="quality runs of each path")
    parser.add_argument("--smoke", action="store_true", help="tiny, to check that it runs (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("smoke run: the numbers below mean nothing")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="sequencer-bench-data-") as scratch:
        workspace = Path(scratch)
        rows, peaks = scale_rows(args, workspace)
        header = [
            "corpus",
            "pairs",
            "MB",
            "prepare s",
            "pairs/s",
            "prepare peak MB",
            "shards",
            "train peak MB",
            "tokens/s",
        ]
        print(markdown_table(header, rows, numeric=[False] + [True] * 8))
        scales = sorted(peaks)
        print(f"\ntraining peak memory {scales[-1]}x / {scales[0]}x: {peaks[scales[-1]] / peaks[scales[0]]:.2f}")
        baseline = baseline_tree(workspace, args.baseline)
        try:
            speed = throughput(args, workspace, baseline)
            print("\n" + markdown_table(["training path", "pairs/s (epoch 2)"], speed, numeric=[False, True]))
            ratio = float(speed[1][1].replace(",", "")) / float(speed[0][1].replace(",", ""))
            print(f"\nstreamed / in memory: {ratio:.3f}")
            if args.quality_minutes:
                header = ["training path", "run", "minutes", "BLEU", "chrF"]
                print(
                    "\n"
                    + markdown_table(
                        header, quality(args, workspace, baseline), numeric=[False, True, True, True, True]
                    )
                )
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(baseline)], capture_output=True
            )


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"\n{time.monotonic() - started:.0f} s")
