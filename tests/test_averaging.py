import json
import logging

import keras
import numpy as np
import pytest
from conftest import run_folders, tiny_config
from test_training import InterruptAt, train

from sequencer import Predictor, Preprocessor, Trainer, averaging, devices
from sequencer.averaging import average_run, average_weights, saved_weights, snapshot_files
from sequencer.checkpoints import load_model
from sequencer.config import CorpusSource
from sequencer.errors import ConfigError, DataError
from sequencer.runs import load_run


def dense(units, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(units)])


def test_averaging_identical_checkpoints_gives_their_weights_and_two_their_mean():
    model = dense(4, 0)
    weights = model.get_weights()
    same = average_weights({"epoch-0001": weights, "epoch-0002": weights, "epoch-0003": weights})
    assert all(np.array_equal(a, b) for a, b in zip(same, model.get_weights()))
    other = dense(4, 1)
    mean = average_weights({"epoch-0001": weights, "epoch-0002": other.get_weights()})
    for averaged, first, second in zip(mean, model.get_weights(), other.get_weights()):
        assert np.allclose(averaged, (first + second) / 2)


def test_checkpoints_of_different_architectures_do_not_average():
    with pytest.raises(DataError, match="epoch-0002 and epoch-0001 have different architectures"):
        average_weights({"epoch-0001": dense(4, 0).get_weights(), "epoch-0002": dense(5, 0).get_weights()})


@pytest.mark.slow
def test_training_averages_its_last_checkpoints_and_keeps_the_better_model(tmp_path):
    config = tiny_config(tmp_path, epochs="3", average_last="2", optimizer="adam")
    run_dir = Trainer(config).train(Preprocessor(config).load())
    assert sorted(path.name for path in (run_dir / "checkpoints").glob("epoch-*")) == ["epoch-0002", "epoch-0003"]
    record = json.loads((run_dir / "summary.json").read_text())["averaging"]
    assert record["checkpoints"] == ["epoch-0002", "epoch-0003"] and record["metric"] == "val_loss"
    if record["averaged"] < record["best_epoch"]:
        assert record["model.keras"] == "averaged" and (run_dir / "best-epoch.keras").is_file()
        assert record["files"] == {"averaged": "model.keras", "best_epoch": "best-epoch.keras"}
    else:
        assert record["model.keras"] == "best epoch" and (run_dir / "averaged.keras").is_file()
        assert record["files"] == {"averaged": "averaged.keras", "best_epoch": "model.keras"}
    assert len(Predictor(load_run(run_dir)).translate(["Hello!"])) == 1

    # scripts/average.py's path: averaging the run again compares with the best epoch, not with
    # the earlier average, and leaves a model.keras and the best epoch's model.
    again = average_run(run_dir, config, Preprocessor(config).load(), devices.setup(config))
    assert again["checkpoints"] == ["epoch-0002", "epoch-0003"]
    assert again["best_epoch"] == pytest.approx(record["best_epoch"], rel=1e-6)
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "best-epoch.keras").is_file() == (again["model.keras"] == "averaged")


@pytest.mark.slow
def test_snapshots_every_n_updates_are_averaged_and_a_resumed_run_takes_them_again(tmp_path):
    # 244 training pairs in batches of 32: 8 batches an epoch, 4 updates of 2 batches; a snapshot
    # every 2 updates, the last 3 kept.
    settings = {"epochs": "3", "average_last": "3", "average_every": "2", "accumulate_steps": "2", "optimizer": "adam"}
    whole = train(tiny_config(tmp_path / "whole", **settings))
    names = ["epoch-0002-update-00000008.npz", "epoch-0003-update-00000010.npz", "epoch-0003-update-00000012.npz"]
    assert [path.name for path in snapshot_files(whole)] == names
    assert [path.name for path in (whole / "checkpoints").glob("epoch-*")] == ["epoch-0003"]  # for resume only
    record = json.loads((whole / "summary.json").read_text())["averaging"]
    assert record["checkpoints"] == names
    run = load_run(whole)
    averaged = load_model(whole / record["files"]["averaged"], run.config)
    snapshots = [saved_weights(path, run.config) for path in snapshot_files(whole)]
    assert [weight.shape for weight in snapshots[0]] == [weight.shape for weight in averaged.get_weights()]
    for mean, *each in zip(averaged.get_weights(), *snapshots):
        assert np.allclose(mean, np.mean(each, axis=0), atol=1e-6)

    # Ctrl-C after update 7, in epoch 2: its snapshot of update 6 belongs to an epoch without a
    # checkpoint, so averaging ignores it, and the resumed run discards it and takes it again.
    config = tiny_config(tmp_path / "parts", **settings)
    with pytest.raises(KeyboardInterrupt):
        train(config, [InterruptAt(epoch=1, batch=5)])
    [interrupted] = run_folders(tmp_path / "parts" / "models")
    taken = sorted(path.name for path in (interrupted / "checkpoints" / "updates").glob("*.npz"))
    assert taken == [
        "epoch-0001-update-00000002.npz",
        "epoch-0001-update-00000004.npz",
        "epoch-0002-update-00000006.npz",
    ]
    assert [path.name for path in snapshot_files(interrupted)] == taken[:2]
    resumed = Trainer(config).resume(interrupted, Preprocessor(config).load())
    assert [path.name for path in snapshot_files(resumed)] == names
    for ours, theirs in zip(snapshot_files(resumed), snapshot_files(whole)):
        pairs = zip(saved_weights(ours, run.config), saved_weights(theirs, run.config))
        assert all(np.allclose(a, b, atol=1e-6) for a, b in pairs)


def test_average_every_needs_snapshots_to_average(tmp_path):
    with pytest.raises(ConfigError, match="average_every=100 needs average_last=2 or more"):
        tiny_config(tmp_path, average_every="100")


@pytest.mark.slow
def test_a_run_too_short_for_two_snapshots_says_so_and_keeps_the_best_epoch(tmp_path, caplog):
    # 2 epochs of 8 updates: no snapshot every 100 updates.
    with caplog.at_level(logging.INFO, logger="sequencer.averaging"):
        run_dir = train(tiny_config(tmp_path, epochs="2", average_last="5", average_every="100"))
    assert (
        f"average_last=5: {run_dir} kept 0 snapshot(s), one every 100 updates (it was trained with average_last=5, "
        "average_every=100); averaging needs two or more; nothing averaged"
    ) in caplog.messages
    assert "averaging" not in json.loads((run_dir / "summary.json").read_text())
    assert (run_dir / "model.keras").is_file() and not (run_dir / "averaged.keras").exists()


def test_a_damaged_snapshot_is_a_one_line_data_error(tmp_path):
    damaged = tmp_path / "epoch-0001-update-00000100.npz"
    damaged.write_bytes(b"not a zip file")
    with pytest.raises(DataError, match=r"epoch-0001-update-00000100\.npz: cannot load the weights"):
        saved_weights(damaged, tiny_config(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("mode, winner", [("min", "averaged"), ("max", "best epoch")])
def test_the_average_replaces_the_best_epoch_only_if_it_scores_better_in_the_monitors_mode(
    tmp_path, monkeypatch, mode, winner
):
    # The average scores 1.0 on val_loss and the best epoch 2.0: lower is better unless mode=max says otherwise.
    scores = iter([1.0, 2.0])
    monkeypatch.setattr(averaging, "validation_score", lambda model, corpus, config, strategy: next(scores))
    config = tiny_config(tmp_path, epochs="2", average_last="2", mode=mode)
    run_dir = Trainer(config).train(Preprocessor(config).load())
    record = json.loads((run_dir / "summary.json").read_text())["averaging"]
    assert (record["averaged"], record["best_epoch"], record["model.keras"]) == (1.0, 2.0, winner)
    run = load_run(run_dir)
    checkpoints = [saved_weights(run_dir / "checkpoints" / name, run.config) for name in record["checkpoints"]]
    averaged = load_model(run_dir / record["files"]["averaged"], run.config).get_weights()
    assert all(np.allclose(mean, np.mean(each, axis=0), atol=1e-6) for mean, *each in zip(averaged, *checkpoints))


@pytest.mark.slow
def test_averaging_a_run_on_other_training_data_is_a_data_error(tmp_path):
    config = tiny_config(tmp_path, epochs="2", average_last="2")
    run_dir = Trainer(config).train(Preprocessor(config).load())
    other = tmp_path / "other"
    other.mkdir()
    source = next(config.train_dir[0].path.iterdir())
    (other / source.name).write_text("".join(reversed(source.read_text().splitlines(keepends=True))))
    changed = config.replace(train_dir=(CorpusSource(other),))
    with pytest.raises(DataError, match=r"the training data in .* changed since"):
        average_run(run_dir, changed, Preprocessor(changed).load(), devices.setup(changed))
