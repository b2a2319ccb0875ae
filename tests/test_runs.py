import json
import shutil

import keras
import pytest

from sequencer.errors import DataError
from sequencer.runs import LATEST_FILE, find_run, load_run, save_run
from sequencer.vocabulary import Vocabulary

RUN_FILES = {"model.keras", "vocab.json", "config.json", "history.json", "summary.json"}


def test_run_folder_holds_what_prediction_needs_and_nothing_pickled(trained_run):
    assert {path.name for path in trained_run.iterdir()} == RUN_FILES
    assert (trained_run.parent / LATEST_FILE).read_text().strip() == trained_run.name
    config = json.loads((trained_run / "config.json").read_text())
    history = json.loads((trained_run / "history.json").read_text())
    summary = json.loads((trained_run / "summary.json").read_text())
    assert config["epochs"] == 2 and config["latent_dim"] == 32
    assert len(history["loss"]) == len(history["val_loss"]) == 2
    assert summary["epochs_completed"] == 2 and summary["interrupted"] is False
    assert summary["train_pairs"] == 240 and summary["val_pairs"] == 60


def test_load_run_restores_model_and_vocabularies(trained_run):
    run = load_run(trained_run)
    assert run.model.get_layer("encoder_lstm").units == 32
    assert run.source_vocab.decode(run.source_vocab.encode("I tried it.")) == "I tried it."
    assert find_run(trained_run.parent, "") == trained_run


def test_interrupted_save_leaves_no_run_and_keeps_latest(tmp_path, monkeypatch):
    model_dir = tmp_path / "models"
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    vocabs = (Vocabulary.build(["a"]), Vocabulary.build(["b"]))
    first = save_run(model_dir, "first", model, vocabs, {}, {}, {})

    def interrupted_save(self, path, *args, **kwargs):
        path.write_bytes(b"half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.Model, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_run(model_dir, "second", model, vocabs, {}, {}, {})
    assert sorted(path.name for path in model_dir.iterdir()) == ["first", LATEST_FILE]
    assert find_run(model_dir, "") == first


def test_missing_run_is_a_clear_error(tmp_path):
    with pytest.raises(DataError) as no_latest:
        find_run(tmp_path, "")
    with pytest.raises(DataError) as not_a_run:
        find_run(tmp_path, tmp_path)
    assert "no trained model" in str(no_latest.value) and "scripts/train.py" in str(no_latest.value)
    assert "is not a run folder" in str(not_a_run.value)


def test_damaged_files_are_data_errors(trained_run, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained_run, broken)
    (broken / "model.keras").write_bytes(b"not a zip file")
    with pytest.raises(DataError) as bad_model:
        load_run(broken)
    (broken / "vocab.json").write_text("{not json")
    with pytest.raises(DataError) as bad_vocab:
        load_run(broken)
    assert "model.keras: cannot load the model" in str(bad_model.value)
    assert "vocab.json: not valid JSON" in str(bad_vocab.value)


def test_a_model_carrying_code_is_refused(trained_run, tmp_path):
    foreign = tmp_path / "foreign"
    shutil.copytree(trained_run, foreign)
    inputs = keras.Input((2,))
    keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs)).save(foreign / "model.keras")
    with pytest.raises(DataError) as caught:
        load_run(foreign)
    assert "cannot load the model" in str(caught.value)
