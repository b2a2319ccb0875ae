"""The benchmarks in benchmarks/ still run: each with --smoke (the same code path, on tiny data and models), end to end.

Their numbers mean nothing here; what fails is a benchmark that no longer runs against the package,
or no longer prints its table. Each one writes under its own temporary folder (TMPDIR), never into
the repository.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = sorted(path.name for path in (ROOT / "benchmarks").glob("*.py"))
# The first columns of the Markdown table(s) each benchmark prints on standard output.
TABLES = {
    "data_scale.py": ["| corpus | pairs |", "| training path | pairs/s (epoch 2) |"],
    "decode_speed.py": ["| decoder | sentences |"],
    "lstm_kernels.py": ["| kernel | ms per step"],
    "quality.py": ["| model | epochs (best) |"],
    "recipe.py": ["| variant | epochs (best) |", "| average of | BLEU |"],
    "serve_load.py": ["| served | dynamic batching | clients |"],
    "train_speed.py": ["| epoch | reference s |", "| data preparation | pairs |"],
    "transformer_sizes.py": ["| candidate | layers |"],
    "bfloat16_speed.py": ["| mixed_precision | seed |"],
    "ctranslate_speed.py": ["| backend | beam | sentences/s |", "| predict.py with | seconds |"],
    "decoding_modes.py": ["| model | mode | sentences |", "| run | pairs trained on |"],
    "backtranslation.py": ["| system | seed | pairs |", "| seed | chrF (a) |"],
}
SEPARATOR = re.compile(r"\|( -{3,}:? \|)+")  # the line under a Markdown table's header
SECONDS = 600  # each takes under a minute and a half on 2 CPU cores; a hung one fails


def repository_outputs() -> set[Path]:
    """What the repository's output folders hold: the runs of models/ (and of its model folders), predictions."""
    return {*ROOT.glob("models/*"), *ROOT.glob("models/*/*"), *ROOT.glob("predict_output/*")}


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_runs_in_smoke_mode_and_prints_its_table(name, tmp_path):
    assert name in TABLES, f"benchmarks/{name}: add the header of the table(s) it prints to TABLES"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    environment.update(TMPDIR=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    before = repository_outputs()
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / name), "--smoke"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SECONDS,
    )
    assert result.returncode == 0, f"benchmarks/{name} --smoke exited {result.returncode}:\n{result.stderr[-4000:]}"
    lines = result.stdout.splitlines()
    for header in TABLES[name]:
        headed = [i for i, line in enumerate(lines[:-1]) if line.startswith(header)]
        assert any(SEPARATOR.fullmatch(lines[i + 1]) for i in headed), (
            f"benchmarks/{name} --smoke printed no table headed {header!r}:\n{result.stdout}"
        )
    assert repository_outputs() == before, "a smoke run wrote into the repository's output folders"
