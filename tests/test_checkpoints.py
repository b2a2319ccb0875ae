"""Checkpoints: the training state, the checkpoint folders, and a run's last checkpoint loaded to resume."""

import shutil

import pytest
from conftest import tiny_config

from sequencer.checkpoints import TrainingState, checkpoint_folders, load_checkpoint
from sequencer.errors import DataError
from sequencer.runs import load_config


def test_the_last_checkpoint_holds_the_optimizer_state_and_the_counters(trained_run):
    model, state = load_checkpoint(trained_run, load_config(trained_run))
    assert state.epochs_completed == 2 and state.resumed_after == [] and state.updates == 2 * 8
    assert int(model.optimizer.iterations.numpy()) == 2 * 8  # the optimizer state came back with the weights


def test_training_state_round_trips_and_reads_older_files(tmp_path):
    state = TrainingState(epochs_completed=3, best_epoch=2, best_value=0.5, resumed_after=[1])
    assert TrainingState.from_json(state.to_json()) == state
    older = {"epochs_completed": 2, "best_epoch": 2, "best_value": 1.0, "best_metrics": {}, "plateau_epochs": 0,
             "stopped_early": False, "seconds": 3.0}  # fmt: skip
    assert TrainingState.from_json(older).resumed_after == []
    assert state.finished(tiny_config(tmp_path, epochs="3")) == ("epoch 3", "--epochs above 3 trains it further")
    assert state.finished(tiny_config(tmp_path, epochs="4")) is None


def test_a_run_is_finished_by_the_first_limit_it_reaches(tmp_path):
    state = TrainingState(epochs_completed=2, updates=16, seconds=90.0)
    assert state.finished(tiny_config(tmp_path, epochs="9", train_steps="16"))[0] == "train_steps=16"
    assert state.finished(tiny_config(tmp_path, epochs="2", train_steps="20")) is None  # train_steps replaces epochs
    assert state.finished(tiny_config(tmp_path, epochs="9", max_minutes="1.5")) == (
        "max_minutes=1.5",
        "--max_minutes above 1.5 trains it further",
    )
    state.stopped_early = True
    assert state.finished(tiny_config(tmp_path, epochs="9")) == ("stopped early after epoch 2", "")


def test_checkpoints_holds_only_the_runs_folders_and_a_damaged_pointer_is_a_data_error(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "checkpoints" / "epoch-notes").mkdir()  # a user's folder, not a checkpoint
    assert [path.name for path in checkpoint_folders(run)] == ["epoch-0002"]
    (run / "checkpoints" / "last").write_text("garbage\n")
    with pytest.raises(DataError, match="names 'garbage', not a checkpoint folder"):
        checkpoint_folders(run)
