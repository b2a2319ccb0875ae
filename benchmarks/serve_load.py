#!/usr/bin/env python3
"""Serving under load: throughput and latency of scripts/serve.py, dynamic batching on and off, run or export.

The server runs as its own process on 127.0.0.1, started once per setting of dynamic_batching,
on a trained run: by default the default LSTM (config.txt as shipped) trained for --epochs
epochs first, or --run an existing run. With --export DIR (an export of scripts/export.py, such
as a CTranslate2 model of the run) the export is measured the same way after the run, so that
the two backends compare on the same requests; --convert makes that export from a Transformer
run first (scripts/export.py --format ctranslate2). For each number of concurrent clients C (--clients),
C clients on threads of this process send --requests requests in all, each of 1 to 5 sentences
drawn with --seed from the sources of training_files/fra.txt (the same requests for every
setting), each client one request at a time on its own connection, after a few warm-up
requests. A measurement stops early after --max-seconds; every request times out after 60 s.
The default of 2,000 requests is about 60 rounds of 32 clients; 400, the earlier default, are
about 13, and gave ratios from 3.5 to 4.7 between runs of the same server and run.

It prints the machine, then a Markdown table of sentences per second and the 50th, 95th and 99th
percentile latency of a request for each setting and C, then the ratio of sentences per second
with batching on and off at the most clients. Target, for the default LSTM on 2 CPU cores: at 32
clients, batching on gives at least 4 times the sentences per second of batching off, with a p95
latency under 1 s.

    python benchmarks/serve_load.py                           # 4 to 8 minutes on 2 CPU cores
    python benchmarks/serve_load.py --run RUN --requests 20   # a quick look at a trained run
    python benchmarks/serve_load.py --run RUN --export DIR --clients 32   # TensorFlow against a CTranslate2 export
    python benchmarks/serve_load.py --smoke                   # a tiny run, to check that it runs (numbers meaningless)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sequencer.config import load_config  # noqa: E402
from sequencer.exports import read_export  # noqa: E402
from sequencer.runs import find_run  # noqa: E402
from sequencer.text import markdown_table  # noqa: E402

CORPUS = ROOT / "training_files" / "fra.txt"
WARM_UP_REQUESTS = 4
REQUEST_SECONDS = 60
# --smoke: these in place of the defaults, to check in seconds that the benchmark runs (tests/test_benchmarks.py):
# a tiny Transformer trained on the toy corpus for one epoch and converted to CTranslate2 (--convert); a few
# requests from 1 and 4 clients, each translation of at most 10 tokens.
SMOKE = {
    "epochs": 1,
    "train_args": f"--train_dir {ROOT / 'tests' / 'data' / 'train'} --model transformer --token_level subword "
    "--subword_vocab 400 --model_dim 16 --num_heads 2 --ffn_dim 32",
    "requests": 12,
    "clients": "1,4",
    "serve_args": "--max_output_len 10",
    "convert": True,
}


def train(workspace: Path, epochs: int, extra: list[str]) -> Path:
    """A model of config.txt (the default LSTM, unless `extra` flags say otherwise) on its pairs, trained for
    `epochs` epochs by scripts/train.py."""
    print(f"training for {epochs} epochs...", file=sys.stderr)
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), "--model_dir", str(workspace), "--quiet"]
    subprocess.run([*command, "--epochs", str(epochs), *extra], check=True)
    return find_run(workspace, "")


def convert(run: Path, workspace: Path) -> Path:
    """The run as a CTranslate2 export, written by scripts/export.py."""
    export = workspace / "ctranslate2"
    command = [sys.executable, str(ROOT / "scripts" / "export.py"), "--run", str(run), "--quiet"]
    subprocess.run([*command, "--format", "ctranslate2", str(export)], check=True)
    return export


def request_bodies(count: int, seed: int) -> list[tuple[bytes, int]]:
    """`count` JSON bodies of 1 to 5 sources of the corpus, and their numbers of sentences."""
    with open(CORPUS, encoding="utf-8") as lines:
        sources = sorted({line.split("\t", 1)[0].strip() for line in lines} - {""})
    drawn = random.Random(seed)
    bodies = []
    for _ in range(count):
        sentences = drawn.sample(sources, drawn.randint(1, 5))
        bodies.append((json.dumps({"text": sentences}).encode(), len(sentences)))
    return bodies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(served: list[str], batching: bool, extra: list[str], log: Path) -> Iterator[int]:
    """scripts/serve.py serving `served` (--run RUN or --export DIR) on a free port of 127.0.0.1, ready to
    answer: the port. SIGTERM stops it."""
    port = free_port()
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), *served, "--port", str(port)]
    command += ["--dynamic_batching", "true" if batching else "false", "--quiet", *extra]
    with open(log, "a") as stderr:
        process = subprocess.Popen(command, stderr=stderr)
    try:
        deadline = time.monotonic() + 300
        while not answers(port, "GET", "/health"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {log}")
            time.sleep(0.5)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(port: int, method: str, path: str, body: bytes | None = None) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_SECONDS)
    try:
        connection.request(method, path, body)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def measure(port: int, bodies: list[tuple[bytes, int]], clients: int, max_seconds: float) -> dict:
    """Send `bodies` from `clients` concurrent clients: sentences per second and latency percentiles."""
    waiting = iter(bodies)
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = time.monotonic() + max_seconds

    def client() -> list[tuple[float, int]]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_SECONDS)
        timings = []
        while time.monotonic() < deadline:
            with lock:
                body, sentences = next(waiting, (None, 0))
            if body is None:
                break
            sent = time.perf_counter()
            connection.request("POST", "/translate", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200:
                raise SystemExit(f"the server answered {response.status}: {answer[:200]!r}")
            timings.append((time.perf_counter() - sent, sentences))
        connection.close()
        return timings

    with ThreadPoolExecutor(clients) as pool:
        timings = [timing for done in [pool.submit(client) for _ in range(clients)] for timing in done.result()]
    seconds = time.perf_counter() - started
    latencies = [latency for latency, _ in timings]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "requests": len(timings),
        "sentences": sum(sentences for _, sentences in timings),
        "seconds": seconds,
        "rate": sum(sentences for _, sentences in timings) / seconds,
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained run folder (default: train the default LSTM first)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the LSTM trained without --run (default 5)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement (default 2000)")
    parser.add_argument("--clients", default="1,8,32", help="numbers of concurrent clients (default 1,8,32)")
    parser.add_argument("--max-seconds", type=float, default=300, help="longest measurement (default 300)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the requests' sentences (default 1)")
    parser.add_argument("--serve-args", default="", help='more flags for serve.py, e.g. "--batch_wait_ms 10"')
    parser.add_argument("--train-args", default="", help='more flags for train.py without --run, e.g. "--threads 2"')
    parser.add_argument("--export", type=Path, help="an export of scripts/export.py to measure after the run")
    parser.add_argument("--convert", action="store_true", help="convert the run to CTranslate2 and measure it too")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check that it runs (numbers meaningless)")
    args = parser.parse_args()
    if args.smoke:  # SMOKE in place of the defaults; flags given still win
        parser.set_defaults(**SMOKE)
        args = parser.parse_args()
        print("--smoke: a tiny run to check that the benchmark runs; its numbers mean nothing")
    clients = [int(count) for count in args.clients.split(",")]
    workspace = Path(tempfile.mkdtemp(prefix="sequencer-bench-serve-"))
    run = args.run.absolute() if args.run else train(workspace, args.epochs, shlex.split(args.train_args))
    export = convert(run, workspace) if args.convert else args.export and args.export.absolute()
    models = {"run": ["--run", str(run)], **({"export": ["--export", str(export)]} if export else {})}
    bodies = request_bodies(args.requests, args.seed)
    extra = shlex.split(args.serve_args)

    results = {}
    for name, served in models.items():
        for batching in (True, False):
            with server(served, batching, extra, workspace / "serve.log") as port:
                for body, _ in bodies[:WARM_UP_REQUESTS]:
                    if not answers(port, "POST", "/translate", body):
                        raise SystemExit(f"a warm-up request failed; see {workspace / 'serve.log'}")
                for count in clients:
                    results[name, batching, count] = measure(port, bodies, count, args.max_seconds)
    report(args, run, export, clients, results)
    print(f"server log: {workspace / 'serve.log'}")


def report(args: argparse.Namespace, run: Path, export: Path | None, clients: list[int], results: dict) -> None:
    config = load_config(None, {})
    print(f"machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPU cores")
    print(
        f"run: {run.name}; server: decode_batch_size={config.decode_batch_size}, "
        f"batch_wait_ms={config.batch_wait_ms}, beam_width={config.beam_width} (config.txt) {args.serve_args}".rstrip()
    )
    if export:
        print(f"export: {export} ({read_export(export)['format']})")
    print(f"requests: {args.requests} per measurement, 1 to 5 sentences each (seed {args.seed})\n")
    header = ["served", "dynamic batching", "clients", "requests", "sentences/s", "p50 ms", "p95 ms", "p99 ms"]
    rows = [
        [
            name,
            "on" if batching else "off",
            count,
            result["requests"],
            f"{result['rate']:.1f}",
            f"{1000 * result['p50']:.0f}",
            f"{1000 * result['p95']:.0f}",
            f"{1000 * result['p99']:.0f}",
        ]
        for (name, batching, count), result in results.items()
    ]
    print(markdown_table(header, rows, numeric=[False, False] + [True] * 6))
    most = max(clients)
    on, off = results["run", True, most], results["run", False, most]
    print(
        f"\nat {most} clients: sentences/s with batching on / off = {on['rate'] / off['rate']:.2f} "
        f"(target at 32: at least 4); p95 with batching on = {on['p95']:.2f} s (target at 32: under 1 s)"
    )
    if export:
        ratio = results["export", True, most]["rate"] / on["rate"]
        print(f"at {most} clients with batching: sentences/s of the export / the run = {ratio:.2f}")


if __name__ == "__main__":
    main()
