import json

import keras
import numpy as np
import pytest
from conftest import tiny_config

from sequencer import Predictor, Preprocessor, Trainer
from sequencer.averaging import average_weights
from sequencer.errors import DataError
from sequencer.runs import load_run, load_vocabularies


def dense(units, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def test_averaging_identical_checkpoints_gives_their_weights_and_two_their_mean():
    model = dense(4, 0)
    same = average_weights({"epoch-0001": model, "epoch-0002": model, "epoch-0003": model})
    assert all(np.array_equal(a, b) for a, b in zip(same, model.get_weights()))
    other = dense(4, 1)
    mean = average_weights({"epoch-0001": model, "epoch-0002": other})
    for averaged, first, second in zip(mean, model.get_weights(), other.get_weights()):
        assert np.allclose(averaged, (first + second) / 2)


def test_checkpoints_of_different_architectures_do_not_average():
    with pytest.raises(DataError, match="epoch-0002 and epoch-0001 have different architectures"):
        average_weights({"epoch-0001": dense(4, 0), "epoch-0002": dense(5, 0)})


def test_training_averages_its_last_checkpoints_and_keeps_the_better_model(tmp_path):
    config = tiny_config(tmp_path, epochs="3", average_last="2", optimizer="adam")
    run_dir = Trainer(config).train(Preprocessor(config).load())
    assert sorted(path.name for path in (run_dir / "checkpoints").glob("epoch-*")) == ["epoch-0002", "epoch-0003"]
    record = json.loads((run_dir / "summary.json").read_text())["averaging"]
    assert record["checkpoints"] == ["epoch-0002", "epoch-0003"] and record["metric"] == "val_loss"
    if record["averaged"] < record["best_epoch"]:
        assert record["model.keras"] == "averaged" and (run_dir / "best-epoch.keras").is_file()
    else:
        assert record["model.keras"] == "best epoch" and (run_dir / "averaged.keras").is_file()
    assert len(Predictor(load_run(run_dir)).translate(["Hello!"])) == 1

    # scripts/average.py's path: averaging the run again compares with the best epoch, not with
    # the earlier average, and leaves a model.keras and the best epoch's model.
    again = Trainer(config, progress="none").average(run_dir, Preprocessor(config).load(load_vocabularies(run_dir)))
    assert again["checkpoints"] == ["epoch-0002", "epoch-0003"]
    assert again["best_epoch"] == pytest.approx(record["best_epoch"], rel=1e-6)
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "best-epoch.keras").is_file() == (again["model.keras"] == "averaged")
