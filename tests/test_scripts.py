"""The scripts as a user runs them: exit status, messages, and what they write."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, TINY_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def script(name, *args, cwd, stdin=None, env=None):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    command = [sys.executable, str(ROOT / "scripts" / name), *args]
    return subprocess.run(
        command, cwd=cwd, input=stdin, capture_output=True, text=True, env={**environment, **(env or {})}, timeout=600
    )


def outputs(tmp_path):
    return ["--config", str(TINY_CONFIG), "--model_dir", "models", "--predict_out", "predicted"]


def test_train_then_predict_files_and_stdin(tmp_path):
    # Run from another folder: paths in the config file are relative to the config file.
    trained = script("train.py", *outputs(tmp_path), cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "240 training, 60 validation and 0 test pairs" in trained.stderr
    assert "Epoch 2/2" in trained.stdout
    [run] = [path for path in (tmp_path / "models").iterdir() if path.is_dir()]

    predicted = script("predict.py", *outputs(tmp_path), cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    source_lines = (DATA / "predict" / "mixed.txt").read_text(encoding="utf-8").splitlines()
    output_lines = (tmp_path / "predicted" / "mixed.txt").read_text(encoding="utf-8").splitlines()
    assert len(output_lines) == len(source_lines)
    assert output_lines[1] == ""
    assert "never seen in training" in predicted.stderr

    piped = script(
        "predict.py", *outputs(tmp_path), "--run", str(run), "-", cwd=tmp_path, stdin="Hello!\n\nI am cold.\n"
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.split("\n") == [output_lines[0], "", output_lines[2], ""]


@pytest.mark.parametrize(
    ("args", "env", "config_text", "message"),
    [
        ([], {}, "epoch=3\n", "config.txt:1: unknown key 'epoch' (did you mean 'epochs'?)"),
        (["--batch_size", "zero"], {}, "", "--batch_size: batch_size='zero' is not allowed; expected an integer >= 1"),
        (
            [],
            {"SEQUENCER_VAL_SPLIT": "2"},
            "",
            "environment variable SEQUENCER_VAL_SPLIT: val_split='2' is not allowed",
        ),
        ([], {}, "train_dir=./missing\n", "train_dir"),
    ],
)
def test_bad_configuration_exits_2_with_one_line_and_writes_nothing(tmp_path, args, env, config_text, message):
    (tmp_path / "config.txt").write_text(config_text + "model_dir=./models\n", encoding="utf-8")
    result = script("train.py", "--config", "config.txt", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_malformed_training_line_exits_2_naming_file_and_line(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "pairs.txt").write_text("Go.\tVa !\nHi. Salut.\n", encoding="utf-8")
    result = script(
        "train.py", "--config", str(TINY_CONFIG), "--train_dir", "train", "--model_dir", "models", cwd=tmp_path
    )
    assert result.returncode == 2
    assert f"{tmp_path / 'train' / 'pairs.txt'}:2: no tab between source and target" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists()


def test_predict_without_a_model_exits_2(tmp_path):
    result = script("predict.py", *outputs(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "no trained model" in result.stderr and "Traceback" not in result.stderr


def test_interrupted_training_leaves_a_run_to_predict_with_and_resume(tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *outputs(tmp_path), "--epochs", "1000"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if line.startswith("Epoch 3/") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "interrupted during epoch" in stderr and "--resume" in stderr and "Traceback" not in stderr
    [run] = [path for path in (tmp_path / "models").iterdir() if path.is_dir()]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_completed"] >= 2

    predicted = script("predict.py", *outputs(tmp_path), "-", cwd=tmp_path, stdin="Hello!\n")
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.split("\n")) == 2

    refused = script("train.py", *outputs(tmp_path), "--resume", "--latent_dim", "8", cwd=tmp_path)
    assert refused.returncode == 2 and "--latent_dim cannot change when resuming" in refused.stderr

    epochs = summary["epochs_completed"] + 1
    resumed = script("train.py", *outputs(tmp_path), "--resume", str(run), "--epochs", str(epochs), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is False and summary["epochs_completed"] == epochs
    assert len((run / "metrics.csv").read_text().splitlines()) == 1 + epochs


def test_list_shows_builders_and_batchers(tmp_path):
    listed = script("train.py", "--list", cwd=tmp_path)
    assert listed.returncode == 0
    assert "model=\n  attention " in listed.stdout and "\n  lstm " in listed.stdout
    assert "  bucketed " in listed.stdout and "  padded " in listed.stdout


def test_unwritable_output_and_empty_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.txt").write_text("")
    (tmp_path / "out").write_text("a file where a folder should be")
    trained = script("train.py", *outputs(tmp_path), "--epochs", "1", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    blocked = script("predict.py", *outputs(tmp_path), "--predict_in", "in", "--predict_out", "out", cwd=tmp_path)
    assert blocked.returncode == 2
    assert blocked.stderr.splitlines()[-1] == f"error: predict_out {tmp_path / 'out'} is not a folder"
    assert "Traceback" not in blocked.stderr
    empty = script("predict.py", *outputs(tmp_path), "--predict_in", "in", "--predict_out", "out2", cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert (tmp_path / "out2" / "empty.txt").read_text() == ""


def test_xla_compiled_training_runs(tmp_path):
    # A process of its own: once TensorFlow's op determinism is on, Keras will not compile with XLA.
    # One batch per epoch keeps the number of shapes XLA compiles for small.
    result = script(
        "train.py", *outputs(tmp_path), "--jit_compile", "true", "--epochs", "1", "--batch_size", "256", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "jit_compile=true: TensorFlow's op determinism excludes XLA" in result.stderr
    assert "doesn't support `jit_compile=True`" not in result.stderr  # Keras did compile with XLA
