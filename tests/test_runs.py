import csv
import json
import logging
import re
import shutil
from pathlib import Path

import keras
import pytest
from conftest import DATA, tiny_config

from sequencer import Predictor, Preprocessor, Trainer
from sequencer.checkpoints import save_model
from sequencer.config import CorpusSource
from sequencer.config import load_config as load_config_file
from sequencer.errors import ConfigError, DataError
from sequencer.runs import (
    LATEST_FILE,
    check_new_run,
    check_resumable,
    find_run,
    find_trained_run,
    load_config,
    load_run,
    run_name,
)
from sequencer.translation import EDGE_SPACE

ROOT = Path(__file__).resolve().parents[1]
METRICS_COLUMNS = {
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "learning_rate",
    "epoch_seconds",
    "samples_per_second",
}


def test_run_folder_holds_what_prediction_and_resume_need(trained_run):
    names = {path.name for path in trained_run.iterdir()}
    assert names == {
        "config.json", "vocab.json", "model.keras", "summary.json", "metrics.csv",
        "train.log", "curves.png", "tensorboard", "checkpoints",
    }  # fmt: skip
    assert not list(trained_run.rglob("*.pkl")) and not list(trained_run.rglob(".*"))
    assert (trained_run.parent / LATEST_FILE).read_text().strip() == trained_run.name
    assert (trained_run / "checkpoints" / "last").read_text().strip() == "epoch-0002"
    assert {p.name for p in (trained_run / "checkpoints" / "epoch-0002").iterdir()} == {"model.keras", "state.json"}
    assert list((trained_run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((trained_run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert (trained_run / "curves.png").read_bytes().startswith(b"\x89PNG")


def test_metrics_summary_and_log_record_every_epoch(trained_run):
    with open(trained_run / "metrics.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert set(rows[0]) == METRICS_COLUMNS
    assert float(rows[0]["samples_per_second"]) > 0 and float(rows[0]["learning_rate"]) == pytest.approx(0.001)
    summary = json.loads((trained_run / "summary.json").read_text())
    assert summary["epochs_completed"] == 2 and summary["interrupted"] is False
    assert summary["train_pairs"] == 244 and summary["val_pairs"] == 56  # of 300, drawn by hash
    best = rows[summary["best_epoch"] - 1]
    assert summary["best_metrics"]["val_loss"] == pytest.approx(float(best["val_loss"]))
    assert summary["best_metrics"]["val_accuracy"] == pytest.approx(float(best["val_accuracy"]))
    assert summary["seconds"] > 0
    log = (trained_run / "train.log").read_text()
    assert "epoch 1/2: " in log and "epoch 2/2: " in log and "| encoder_lstm | LSTM | 10,624 |" in log


def test_load_run(trained_run):
    run = load_run(trained_run)
    assert run.model.get_layer("encoder_lstm").units == 32
    assert run.config.latent_dim == 32 and run.summary["max_target_len"] == 31
    assert find_run(trained_run.parent, "") == trained_run


def test_run_names_are_short_and_config_json_holds_the_settings(tmp_path):
    name = run_name(tiny_config(tmp_path, optimizer="adam", token_level="word"))
    assert re.fullmatch(r"lstm-word-\d{8}-\d{6}", name)
    assert run_name(tiny_config(tmp_path, run_name="baseline")) == "baseline"
    with pytest.raises(ConfigError):
        tiny_config(tmp_path, run_name="../elsewhere")


def test_interrupted_model_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    save_model(model, path)
    before = path.read_bytes()

    def interrupted_save(self, filepath, *args, **kwargs):
        filepath.write_bytes(b"half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_model(model, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.keras"]


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(DataError) as no_latest:
        find_run(tmp_path, "")
    with pytest.raises(DataError) as not_a_run:
        find_run(tmp_path, tmp_path)
    with pytest.raises(DataError) as missing:
        find_run(tmp_path, tmp_path / "gone")
    (tmp_path / LATEST_FILE).write_text("deleted-run\n")
    with pytest.raises(DataError) as latest_missing:
        find_run(tmp_path, "")
    assert "no trained model" in str(no_latest.value) and "scripts/train.py" in str(no_latest.value)
    assert str(not_a_run.value) == f"{tmp_path} is not a run folder: it has no config.json"
    assert str(missing.value) == f"the run folder {tmp_path / 'gone'} does not exist"
    latest = tmp_path / LATEST_FILE
    assert (
        str(latest_missing.value)
        == f"{latest} names {tmp_path / 'deleted-run'}, which does not exist; set run=NAME to use another run"
    )


def test_where_a_new_run_cannot_go_is_a_config_error_before_training(tmp_path):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "models" / "mine").mkdir(parents=True)
    config = tiny_config(tmp_path, model_dir=str(tmp_path / "models"))
    check_new_run(config)  # a folder, or one that can be made
    check_new_run(config.replace(model_dir=tmp_path / "new" / "models"))
    with pytest.raises(
        ConfigError,
        match=r"^model_dir .*a-file is not a folder; set model_dir in the config file, or with --model_dir$",
    ):
        check_new_run(config.replace(model_dir=tmp_path / "a-file"))
    with pytest.raises(ConfigError, match=r"^model_dir .*a-file/models: .*a-file is a file, not a folder$"):
        check_new_run(config.replace(model_dir=tmp_path / "a-file" / "models"))
    with pytest.raises(ConfigError, match=r"^run_name=mine: .* exists already; choose another name \(train\.py"):
        check_new_run(config.replace(run_name="mine"))


def test_a_bare_run_name_is_a_folder_in_model_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, run="lstm-1")
    assert config.run == config.model_dir / "lstm-1"
    assert tiny_config(tmp_path, run="./lstm-1").run == tmp_path / "lstm-1"  # a path, from the working directory


def test_damaged_files_are_data_errors(trained_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "model.keras").write_bytes(b"not a zip file")
    with pytest.raises(DataError) as bad_model:
        load_run(broken)
    (broken / "vocab.json").write_text("{not json")
    with pytest.raises(DataError) as bad_vocab:
        load_run(broken)
    assert str(bad_model.value).endswith(
        "model.keras: cannot load the model (not a .keras zip archive: damaged, or cut short)"
    )
    assert "vocab.json: not valid JSON" in str(bad_vocab.value)


def test_a_model_carrying_code_is_refused(trained_run, tmp_path):
    foreign = tmp_path / "foreign"
    shutil.copytree(trained_run, foreign)
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(foreign / "model.keras")
    with pytest.raises(DataError) as caught:
        load_run(foreign)
    assert "cannot load the model" in str(caught.value) and "safe_mode" in str(caught.value)


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("name", ["lstm", "attention"])
def test_runs_saved_by_version_0_1_translate_as_they_did(name, policy, tmp_path):
    # tests/data/runs-v0.1 holds tiny runs trained with sequencer 0.1.0 (commit c622279), whose
    # models were functional Keras models, and the translations that version gave; also in a
    # process whose training left Keras' global policy mixed_bfloat16: runs translate in float32.
    run_dir = DATA / "runs-v0.1" / name
    recorded = json.loads((run_dir / "translations.json").read_text())
    keras.mixed_precision.set_global_policy(policy)
    run = load_run(run_dir)
    settings = run.config.replace(min_output_len=0)  # 0.1 had no minimum output length
    # The same translations, but for the edge spaces that translations lose now (0.1 kept them).
    greedy = [text.strip(EDGE_SPACE) for text in recorded["greedy"]]
    assert Predictor(run, settings).translate(recorded["sources"]) == greedy
    beam = Predictor(run, settings.replace(beam_width=3, n_best=2)).translate_n_best(recorded["sources"])
    assert beam == [[text.strip(EDGE_SPACE) for text in texts] for texts in recorded["beam3_n2"]]

    copy = tmp_path / name
    shutil.copytree(run_dir, copy)
    (copy / "checkpoints" / "epoch-0002").mkdir(parents=True)
    shutil.copy(run_dir / "model.keras", copy / "checkpoints" / "epoch-0002" / "model.keras")
    (copy / "checkpoints" / "epoch-0002" / "state.json").write_text('{"epochs_completed": 2}')
    (copy / "checkpoints" / "last").write_text("epoch-0002\n")
    with pytest.raises(DataError) as caught:
        check_resumable(copy)
    assert "saved by sequencer 0.1.0" in str(caught.value) and "commit c622279" in str(caught.value)
    config = load_config(copy)
    with pytest.raises(DataError, match=r"saved by sequencer 0\.1\.0"):  # before anything else is compared
        Trainer(config).resume(copy, Preprocessor(config.replace(train_dir=(CorpusSource(DATA / "train"),))).load())


def test_a_newest_run_without_a_model_is_passed_over_for_the_newest_trained_one(trained_run, tmp_path, caplog):
    models = tmp_path / "models"
    models.mkdir()
    trained = Path(shutil.copytree(trained_run, models / "lstm-char-20260101-000000"))
    young = models / "lstm-char-20260102-000000"  # stopped in its first epoch: config and vocabulary, no model
    young.mkdir()
    for name in ("config.json", "vocab.json", "summary.json"):
        shutil.copy(trained / name, young / name)
    (models / LATEST_FILE).write_text(young.name + "\n")
    with caplog.at_level(logging.WARNING, logger="sequencer.runs"):
        assert find_trained_run(models, "") == trained
    assert caplog.messages == [
        f"{young}, the newest run, has no model.keras yet (its training has not finished an epoch): translating "
        f"with {trained}, the newest run that has one (set run=NAME to choose another)"
    ]
    with pytest.raises(DataError, match=r"has no model\.keras yet: .*train\.py --resume lstm-char-20260102-000000"):
        find_trained_run(models, young)  # named: no other run will do
    shutil.rmtree(trained)
    with pytest.raises(DataError, match=r"the newest run, has no model\.keras yet .* and no other run in"):
        find_trained_run(models, "")


def test_the_transformer_config_keeps_its_runs_apart():
    """predict.py --config configs/transformer.txt must find the Transformer's newest run, not any model's."""
    transformer = load_config_file(ROOT / "configs" / "transformer.txt", environ={})
    default = load_config_file(None, environ={})
    assert transformer.model_dir == ROOT / "models" / "transformer" != default.model_dir


def test_a_run_of_sequencer_0_2_translates_but_is_not_resumed(trained_run, tmp_path):
    """0.2 split the pairs and ordered the batches otherwise: resuming would not be the same run."""
    copy = Path(shutil.copytree(trained_run, tmp_path / "run"))
    summary = json.loads((copy / "summary.json").read_text())
    (copy / "summary.json").write_text(json.dumps({**summary, "sequencer_version": "0.2.0"}))
    assert load_run(copy).model is not None
    with pytest.raises(DataError, match=r"saved by sequencer 0\.2\.0: .* resume it with sequencer 0\.2\.0 \(commit "):
        check_resumable(copy)
