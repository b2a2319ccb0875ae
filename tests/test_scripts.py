"""The scripts as a user runs them: exit status, messages, and what they write."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, TINY_CONFIG, run_folders

ROOT = Path(__file__).resolve().parents[1]


def script(name, *args, cwd, stdin=None, env=None):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    command = [sys.executable, str(ROOT / "scripts" / name), *args]
    return subprocess.run(
        command, cwd=cwd, input=stdin, capture_output=True, text=True, env={**environment, **(env or {})}, timeout=600
    )


# The tiny config, writing under the working directory (a test's tmp_path).
TRAIN = ["--config", str(TINY_CONFIG), "--model_dir", "models"]
PREDICT = [*TRAIN, "--predict_out", "predicted"]


@pytest.mark.slow
def test_train_then_predict_files_and_stdin(tmp_path):
    # Run from another folder: paths in the config file are relative to the config file.
    trained = script("train.py", *TRAIN, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "244 training, 56 validation and 0 test pairs" in trained.stderr
    # Standard output is not a terminal: one readable line per epoch and nothing else.
    epochs = trained.stdout.splitlines()
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"] and "val_loss" in epochs[1]
    assert not any(character in trained.stdout for character in "\r\b\x1b")
    assert "I0000" not in trained.stderr and "absl" not in trained.stderr  # TensorFlow's start-up lines
    [run] = run_folders(tmp_path / "models")

    predicted = script("predict.py", *PREDICT, cwd=tmp_path)
    assert predicted.returncode == 0, predicted.stderr
    source_lines = (DATA / "predict" / "mixed.txt").read_text(encoding="utf-8").splitlines()
    output_lines = (tmp_path / "predicted" / "mixed.txt").read_text(encoding="utf-8").splitlines()
    assert len(output_lines) == len(source_lines)
    assert output_lines[1] == ""
    assert "never seen in training" in predicted.stderr

    # A bare name is a run in model_dir; one TensorFlow thread translates as the default ones do.
    stdin = "Hello!\n\nI am cold.\n"
    piped = script("predict.py", *PREDICT, "--run", run.name, "--threads", "1", "-", cwd=tmp_path, stdin=stdin)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.split("\n") == [output_lines[0], "", output_lines[2], ""]
    assert f"translating with {run}" in piped.stderr

    # A reader that stops early (`| head -1`): predict.py stops too, quietly.
    command = [sys.executable, str(ROOT / "scripts" / "predict.py"), *PREDICT, "--quiet", "-"]
    with subprocess.Popen(
        command, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as head:
        head.stdin.write(b"Hello!\n" * 3000)  # translations of more than a pipe holds
        head.stdin.close()
        head.stdout.readline()
        head.stdout.close()
        assert head.wait(timeout=300) == 1 and head.stderr.read() == b""

    quiet = script("train.py", *TRAIN, "--epochs", "1", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


@pytest.mark.parametrize(
    ("args", "env", "config_text", "message"),
    [
        ([], {}, "epoch=3\n", "config.txt:1: unknown key 'epoch' (did you mean 'epochs'?)"),
        (
            [],
            {},
            'epochs="5\n',
            "config.txt:1: cannot read 'epochs=\"5'; expected KEY=VALUE",
        ),  # python-dotenv says nothing
        (["--batch_size", "zero"], {}, "", "--batch_size: batch_size='zero' is not allowed; expected an integer >= 1"),
        (
            [],
            {"SEQUENCER_VAL_SPLIT": "2"},
            "",
            "environment variable SEQUENCER_VAL_SPLIT: val_split='2' is not allowed",
        ),
        ([], {}, "train_dir=./missing\n", "train_dir"),
        (["--model_dir", "train/pairs.txt"], {}, "", "/train/pairs.txt is not a folder"),
        (["--seed", "4294967296"], {}, "", "expected an integer in [0, 4294967295]"),
        (["--epcohs", "2"], {}, "", "unknown flag --epcohs (did you mean --epochs?)"),
        (["--resume", "--run_name", "b"], {}, "", "the run --resume continues; to continue the run b, use --resume b"),
        (["--resume", "--run", "b"], {}, "", "--run neither chooses nor renames the run --resume continues"),
        pytest.param(  # found after TensorFlow starts, before anything else is said
            ["--train_dir", "train", "--val_split", "0", "--monitor", "loss", "--mixed_precision", "true"],
            {},
            "",
            "mixed_precision=float16 needs a GPU",
            marks=pytest.mark.slow,
        ),
        pytest.param(
            ["--train_dir", "train", "--val_split", "0", "--monitor", "loss", "--device", "gpu"],
            {},
            "",
            "sees 0 GPU",
            marks=pytest.mark.slow,
        ),
        (["--distribution", "multi_worker"], {"TF_CONFIG": ""}, "", "needs the cluster in the TF_CONFIG"),
    ],
)
def test_bad_configuration_exits_2_with_one_line_and_writes_nothing(tmp_path, args, env, config_text, message):
    """Nothing is written, but for the errors only TensorFlow finds, after the corpus is prepared
    (and kept for the next run): then the preparation's lines come first."""
    (tmp_path / "config.txt").write_text(config_text + "model_dir=./models\n", encoding="utf-8")
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "pairs.txt").write_text("Go.\tVa !\nHi.\tSalut.\n", encoding="utf-8")
    result = script("train.py", "--config", "config.txt", *args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    *before, last = result.stderr.strip().splitlines()
    assert last.startswith("error: ") and message in last and "Traceback" not in result.stderr
    preparation = ("counting tokens: ", "encoding and writing pairs: ", "prepared ")
    assert [line for line in before if not line.startswith(preparation)] == []
    written = [path.name for path in (tmp_path / "models").iterdir()] if (tmp_path / "models").exists() else []
    assert written in ([], ["prepared"])


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


def test_predict_given_a_file_name_says_how_to_translate_a_file(tmp_path):
    result = script("predict.py", *PREDICT, "notes.txt", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "error: predict.py takes no file names, only - for standard input: to translate notes.txt, "
        "run predict.py - < notes.txt, or put it in a folder and set predict_in\n"
    )


def test_predict_without_a_model_exits_2(tmp_path):
    result = script("predict.py", *PREDICT, cwd=tmp_path)
    assert result.returncode == 2
    assert "no trained model" in result.stderr and "Traceback" not in result.stderr
    missing = script("predict.py", *PREDICT, "--run", "lstm-20260101", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == f"error: the run folder {tmp_path / 'models' / 'lstm-20260101'} does not exist\n"


@pytest.mark.slow
def test_a_damaged_model_is_one_line_after_tensorflow_starts(tmp_path):
    run = tmp_path / "models" / "broken"
    run.mkdir(parents=True)
    vocabulary = {"specials": ["<pad>", "<s>", "</s>", "<unk>"], "level": "char", "tokens": ["a"]}
    (run / "config.json").write_text("{}")
    (run / "vocab.json").write_text(json.dumps({"source": vocabulary, "target": vocabulary}))
    (run / "summary.json").write_text("{}")
    (run / "model.keras").write_bytes(b"not a zip file")
    result = script("predict.py", *PREDICT, "--run", "broken", "--quiet", "-", cwd=tmp_path, stdin="a\n")
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "model.keras: cannot load the model" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_help_lists_the_keys_a_script_uses_and_ignored_flags_are_warnings(tmp_path):
    helped = script("predict.py", "--help", cwd=tmp_path)
    assert "--beam_width" in helped.stdout and "--predict_in" in helped.stdout
    assert "--latent_dim" not in helped.stdout and "--population_size" not in helped.stdout
    assert "docs/configuration.md" in helped.stdout
    ignored = script("predict.py", *PREDICT, "--latent_dim", "999", cwd=tmp_path)
    assert ignored.returncode == 2  # no model yet; the warning comes first
    assert ignored.stderr.splitlines()[0] == "warning: --latent_dim is not a setting predict.py uses; it is ignored"
    # An ignored flag is not applied either, so that a value the script does not use cannot stop it.
    shown = script("train.py", *TRAIN, "--n_best", "2", "--print-config", cwd=tmp_path)
    assert shown.returncode == 0 and "\nn_best=1\n" in shown.stdout
    assert shown.stderr == "warning: --n_best is not a setting train.py uses; it is ignored\n"
    # A mistyped flag before a value: the flag is the error, not the value predict.py's "-" would take.
    # The flag meant is one --help lists, one the typed text begins, if there is such a one.
    for typed, meant in (["--latnet_dim", "2"], "--latent_dim"), (["--beam", "4"], "--beam_width"), (["--h"], "--help"):
        mistyped = script("predict.py", *typed, cwd=tmp_path)
        assert mistyped.returncode == 2
        assert mistyped.stderr == f"error: unknown flag {typed[0]} (did you mean {meant}?); see predict.py --help\n"


@pytest.mark.slow
def test_interrupted_training_leaves_a_run_to_predict_with_and_resume(tmp_path):
    command = [sys.executable, str(ROOT / "scripts" / "train.py"), *TRAIN, "--epochs", "1000"]
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if line.startswith("epoch 2/") or time.monotonic() > deadline:
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "interrupted during epoch" in stderr and "--resume" in stderr and "Traceback" not in stderr
    [run] = run_folders(tmp_path / "models")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["epochs_completed"] >= 2

    predicted = script("predict.py", *PREDICT, "-", cwd=tmp_path, stdin="Hello!\n")
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.split("\n")) == 2

    refused = script("train.py", *TRAIN, "--resume", "--latent_dim", "8", cwd=tmp_path)
    assert refused.returncode == 2 and "latent_dim cannot change when resuming" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1

    epochs = summary["epochs_completed"] + 1
    shown = script("train.py", *TRAIN, "--resume", run.name, "--epochs", str(epochs), "--print-config", cwd=tmp_path)
    assert shown.returncode == 0 and f"\nepochs={epochs}\n" in shown.stdout  # the run's settings, the flag on top
    assert "\nlatent_dim=32\n" in shown.stdout and "\nepochs=1000\n" not in shown.stdout
    resumed = script("train.py", *TRAIN, "--resume", run.name, "--epochs", str(epochs), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["interrupted"] is False and summary["epochs_completed"] == epochs
    assert summary["resumed_after"] == [epochs - 1]
    rows = (run / "metrics.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["epoch", *map(str, range(1, epochs + 1))]


def test_list_shows_builders_and_batchers(tmp_path):
    listed = script("train.py", "--list", cwd=tmp_path)
    assert listed.returncode == 0
    assert "model=\n  attention " in listed.stdout and "\n  lstm " in listed.stdout
    assert "  bucketed " in listed.stdout and "  padded " in listed.stdout


@pytest.mark.slow
def test_unwritable_output_and_empty_input(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.txt").write_text("")
    (tmp_path / "out").write_text("a file where a folder should be")
    trained = script("train.py", *TRAIN, "--epochs", "1", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    blocked = script("predict.py", *PREDICT, "--predict_in", "in", "--predict_out", "out", cwd=tmp_path)
    assert blocked.returncode == 2
    assert blocked.stderr.splitlines()[-1] == (
        f"error: predict_out {tmp_path / 'out'} is not a folder; "
        "set predict_out in the config file, or with --predict_out"
    )
    assert "Traceback" not in blocked.stderr
    # Every input file is read before any is translated: a bad line stops them all, with nothing written.
    (tmp_path / "in" / "z-bad.txt").write_bytes(b"Hello.\n\xff\n")
    bad_line = script("predict.py", *PREDICT, "--predict_in", "in", "--predict_out", "out3", cwd=tmp_path)
    assert bad_line.returncode == 2
    assert bad_line.stderr == f"error: {tmp_path / 'in' / 'z-bad.txt'}:2: not valid UTF-8 (byte 1 of the line)\n"
    assert not (tmp_path / "out3").exists()
    (tmp_path / "in" / "z-bad.txt").unlink()
    empty = script("predict.py", *PREDICT, "--predict_in", "in", "--predict_out", "out2", cwd=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert (tmp_path / "out2" / "empty.txt").read_text() == ""

    run_name = (tmp_path / "models" / "latest").read_text().strip()
    exported = script("export.py", *TRAIN, "exports/en-fr", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == ""  # status on standard error, as every script has it
    assert exported.stderr.splitlines()[-1] == f"exported {run_name} to {tmp_path / 'exports' / 'en-fr'} (savedmodel)"
    assert (tmp_path / "exports" / "en-fr" / "saved_model.pb").is_file()
    again = script("export.py", *TRAIN, "exports/en-fr", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr == (
        f"error: {tmp_path / 'exports' / 'en-fr'} exists already; choose another folder or pass --force to replace it\n"
    )
    under_a_file = script("export.py", *TRAIN, "out/en-fr", cwd=tmp_path)
    exports = tmp_path / "out" / "en-fr"
    assert under_a_file.returncode == 2 and under_a_file.stderr == (
        f"error: cannot make the export folder {exports}: {tmp_path / 'out'} is a file, not a folder\n"
    )
    (tmp_path / "test.txt").write_text("Go.\tVa !\nno tab here\nHi.\tSalut.\n", encoding="utf-8")
    strict = script("evaluate.py", *TRAIN, "test.txt", cwd=tmp_path)
    assert strict.returncode == 2 and strict.stderr == (
        "error: test.txt:2: no tab between source and target; expected source<TAB>target\n"
    )
    empty = script("evaluate.py", *TRAIN, "/dev/null", cwd=tmp_path)  # not a regular file, but readable
    assert empty.returncode == 2 and empty.stderr == "error: test file /dev/null holds no source<TAB>target pairs\n"
    lenient = script("evaluate.py", *TRAIN, "--on_bad_line", "skip", "test.txt", cwd=tmp_path)
    assert lenient.returncode == 0, lenient.stderr
    assert "warning: skipped 1 malformed line in test.txt (on_bad_line=skip)" in lenient.stderr
    assert "| test.txt |" in lenient.stdout  # as typed; in eval.json, by its path, apart from the held-out pairs
    assert list(json.loads((tmp_path / "models" / run_name / "eval.json").read_text())) == [str(tmp_path / "test.txt")]
    no_held_out = script("evaluate.py", *TRAIN, cwd=tmp_path)  # trained with test_split=0
    assert no_held_out.returncode == 2 and no_held_out.stderr == (
        f"error: {tmp_path / 'models' / run_name} has no held-out test pairs (test.txt, saved when test_split is "
        "above 0); name test files: evaluate.py FILE\n"
    )
    for named in ([run_name], ["--run", run_name], []):  # a bare name is a run in model_dir; none: the newest
        nothing_to_average = script("average.py", *TRAIN, *named, "--average_last", "3", cwd=tmp_path)
        assert nothing_to_average.returncode == 2
        assert nothing_to_average.stderr == (
            f"error: average_last=3: {tmp_path / 'models' / run_name} kept 1 checkpoint(s) (it was trained with "
            "average_last=0, average_every=0); averaging needs two or more\n"
        )


@pytest.mark.slow
def test_evaluate_without_files_scores_the_held_out_pairs_and_records_how_it_decoded(tmp_path):
    trained = script("train.py", *TRAIN, "--epochs", "1", "--test_split", "0.2", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / "models" / (tmp_path / "models" / "latest").read_text().strip()
    sources = {line.split("\t")[0] for line in (run_dir / "test.txt").read_text(encoding="utf-8").splitlines()}
    greedy = json.loads((run_dir / "eval.json").read_text())["test.txt"]  # scored at the end of training
    assert greedy["decoding"]["beam_width"] == 1 and greedy["sentences"] == len(sources)
    beam = script("evaluate.py", *TRAIN, "--beam_width", "2", "--quiet", cwd=tmp_path)
    assert beam.returncode == 0, beam.stderr
    assert f"| test.txt | {len(sources)} |" in beam.stdout
    scores = json.loads((run_dir / "eval.json").read_text())["test.txt"]
    assert scores["decoding"] == {**greedy["decoding"], "beam_width": 2} and scores["sentences"] == len(sources)


@pytest.mark.slow
def test_tune_prints_its_own_lines_only(tmp_path):
    tuning = ["--population_size", "2", "--ready_after", "1", "--stop_after", "2", "--latent_dim", "16"]
    tuned = script("tune.py", *TRAIN, *tuning, cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    preparation = ("counting tokens: ", "encoding and writing pairs: ", "prepared ")
    ours = ("data: ", "population (val_loss, best first):", "| ", "best member saved as ", *preparation)
    assert [line for line in tuned.stderr.splitlines() if not line.startswith(ours)] == []
    assert (tmp_path / "models" / "latest").read_text().strip().endswith("-best")


@pytest.mark.slow
def test_a_run_trained_on_a_cluster_averages_on_one_device(tmp_path):
    trained = script("train.py", *TRAIN, "--average_last", "2", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    run_dir = tmp_path / "models" / (tmp_path / "models" / "latest").read_text().strip()
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "distribution": "multi_worker"}))
    averaged = script("average.py", *TRAIN, cwd=tmp_path, env={"TF_CONFIG": ""})
    assert averaged.returncode == 0, averaged.stderr
    assert "average of epoch-0001, epoch-0002: val_loss" in averaged.stderr


@pytest.mark.slow
def test_xla_compiled_training_runs(tmp_path):
    # A process of its own: once TensorFlow's op determinism is on, Keras will not compile with XLA.
    # One batch per epoch keeps the number of shapes XLA compiles for small.
    result = script("train.py", *TRAIN, "--jit_compile", "true", "--epochs", "1", "--batch_size", "256", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "jit_compile=true: TensorFlow's op determinism excludes XLA" in result.stderr
    assert "doesn't support `jit_compile=True`" not in result.stderr  # Keras did compile with XLA


@pytest.mark.slow
def test_the_library_example_runs_from_any_folder(tmp_path):
    """docs/development.md's Python example, as a script outside the clone: the installed package
    imports, trains (on 300 pairs, by environment variables), translates, and prints nothing of TensorFlow."""
    page = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    example = page.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(example, encoding="utf-8")
    settings = {"num_samples": "300", "latent_dim": "16", "model_dir": str(tmp_path / "models")}
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    environment.update({f"SEQUENCER_{name.upper()}": value for name, value in settings.items()})
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=600
    )
    assert done.returncode == 0, done.stderr
    translations, hypotheses = done.stdout.splitlines()[-2:]
    assert translations.startswith("[") and hypotheses.startswith("[[(")
    assert "cuda" not in done.stderr.lower() and "oneDNN" not in done.stderr


@pytest.mark.slow
def test_prefixes_samples_scores_fine_tuning_and_back_translation_from_the_scripts(tmp_path):
    assert script("train.py", *TRAIN, "--quiet", cwd=tmp_path).returncode == 0
    [run] = run_folders(tmp_path / "models")
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    (tmp_path / "prefixes.txt").write_text("Je\n\nIl fait\n", encoding="utf-8")
    stdin = "Hello!\n\nI am cold.\n"
    forced = script("predict.py", *PREDICT, "--prefix", "prefixes.txt", "-", cwd=tmp_path, stdin=stdin)
    assert forced.returncode == 0, forced.stderr
    first, empty, third = forced.stdout.splitlines()
    assert first.startswith("Je") and empty == "" and third.startswith("Il fait")
    (tmp_path / "short.txt").write_text("Je\n", encoding="utf-8")
    short = script("predict.py", *PREDICT, "--prefix", "short.txt", "-", cwd=tmp_path, stdin=stdin)
    assert short.returncode == 2 and short.stderr.splitlines()[-1].startswith("error: short.txt has 1 line(s), fewer")

    sample = ["--decoding", "sample", "--n_best", "3", "--seed", "5", "-"]
    drawn = [script("predict.py", *PREDICT, *sample, cwd=tmp_path, stdin=stdin) for _ in range(2)]
    assert drawn[0].returncode == 0 and drawn[0].stdout == drawn[1].stdout
    assert len(drawn[0].stdout.splitlines()[0].split("\t")) == 3  # n_best samples, tab-separated

    pairs = "Go.\tVa !\nI am cold.\tJ'ai froid.\n\nWho?\tQui ?\n"
    scored = script("score.py", *TRAIN, "--sort", "-", cwd=tmp_path, stdin=pairs)
    assert scored.returncode == 0, scored.stderr
    rows = [line.split("\t") for line in scored.stdout.splitlines()]
    assert len(rows) == 3 and [float(row[1]) for row in rows] == sorted((float(row[1]) for row in rows), reverse=True)
    bad = script("score.py", *TRAIN, "-", cwd=tmp_path, stdin="Go.\tVa !\nno tab\n")
    assert bad.returncode == 2 and "<stdin>:2: no tab between source and target" in bad.stderr

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "pairs.txt").write_text("Go.\tVa !\nRun!\tCours !\n" * 30, encoding="utf-8")
    tuned = script("train.py", *TRAIN, "--init_from", run.name, "--train_dir", "new", "--epochs", "1", cwd=tmp_path)
    assert tuned.returncode == 0, tuned.stderr
    assert before == {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    wider = script("train.py", *TRAIN, "--init_from", run.name, "--latent_dim", "8", cwd=tmp_path)
    assert wider.returncode == 2 and "latent_dim=8 differs from the 32 of" in wider.stderr.splitlines()[-1]

    (tmp_path / "mono.txt").write_text("Je suis là.\nIl fait froid.\n\nVa !\n", encoding="utf-8")
    backtranslated = script("backtranslate.py", *TRAIN, "--epochs", "1", "mono.txt", cwd=tmp_path)
    assert backtranslated.returncode == 0, backtranslated.stderr
    synthetic = (tmp_path / "models" / "backtranslated" / "mono.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[1] for line in synthetic] == ["Je suis là.", "Il fait froid.", "Va !"]
    assert all(line.startswith("<bt> ") for line in synthetic)
    reverse, forward = run_folders(tmp_path / "models")[-2:]
    assert json.loads((reverse / "config.json").read_text())["reverse"] is True
    assert "in 2 corpora" not in backtranslated.stderr and "mono.txt" in (forward / "config.json").read_text()
