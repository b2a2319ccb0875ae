import csv
import json
import socket
from pathlib import Path

import pytest
from conftest import tiny_config

from sequencer import Predictor, Preprocessor
from sequencer.errors import ConfigError
from sequencer.runs import load_run
from sequencer.tuning import check_ray_address, tune_population


def metrics_rows(run_folder):
    with open(Path(run_folder) / "metrics.csv", newline="") as stream:
        return list(csv.DictReader(stream))


# A small Transformer on subwords: each member trains its own SentencePiece model's run.
TRANSFORMER = {"model": "transformer", "token_level": "subword", "subword_vocab": "400", "model_dim": "16"}
TRANSFORMER.update(num_heads="2", ffn_dim="32", optimizer="adam", warmup_steps="4")


@pytest.mark.slow
@pytest.mark.parametrize("settings", [{"latent_dim": "16"}, TRANSFORMER], ids=["lstm", "transformer-subword"])
def test_population_of_two_exploits_weights_and_settings_and_saves_the_best_as_a_run(tmp_path, monkeypatch, settings):
    monkeypatch.chdir(tmp_path)  # Ray's workers must find the package wherever the work starts
    tuning = {"population_size": "2", "ready_after": "1", "stop_after": "2"}
    config = tiny_config(tmp_path, **tuning, **settings, test_split="0.1", average_last="2")
    best = tune_population(config, Preprocessor(config).load())

    population = json.loads((best / "population.json").read_text())
    members = {member["trial"]: member for member in population["members"]}
    assert len(members) == 2
    [copier] = [member for member in members.values() if member["copied"]]  # after epoch 1, the worse copies
    [copy] = copier["copied"]
    donor = members[copy["member"]]
    assert copy["after_epoch"] == 1 and donor is not copier
    # Weights: the copier's run goes on from the donor's: its first epoch is the donor's, row for row.
    assert metrics_rows(copier["checkpoint"])[0] == metrics_rows(donor["checkpoint"])[0]
    assert len(metrics_rows(copier["checkpoint"])) == 2
    # Settings: the copier's run had the donor's settings for epoch 1, and perturbed ones from epoch 2.
    assert copier["schedule"][0] == donor["schedule"][0] and copier["schedule"][0]["from_epoch"] == 1
    assert copier["schedule"][-1]["from_epoch"] == 2
    assert copier["schedule"][-1]["settings"] != donor["schedule"][0]["settings"]
    assert copier["schedule"][-1]["settings"]["batch_size"] in (32, 64, 128)

    run = load_run(best)  # an ordinary run folder, finished as train.py finishes one
    assert len(metrics_rows(best)) == 2
    summary = json.loads((best / "summary.json").read_text())
    assert summary["averaging"]["checkpoints"] == ["epoch-0001", "epoch-0002"]
    assert json.loads((best / "eval.json").read_text())["test.txt"]["references"] == summary["test_pairs"] > 0
    assert run.config.model == config.model and run.target_vocab.level == config.token_level
    assert len(Predictor(run).translate(["Go.", "Hello!"])) == 2
    assert (config.model_dir / "latest").read_text().strip() == best.name


def test_a_ray_address_where_nothing_listens_is_a_config_error_at_once_and_one_that_answers_passes():
    with socket.socket() as probe:  # a port that was free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"ray_address=127\.0\.0\.1:{port}: no Ray cluster answers there \("):
        check_ray_address(f"127.0.0.1:{port}")
    with socket.socket() as listening:  # something answers: Ray's to judge
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_ray_address(f"127.0.0.1:{listening.getsockname()[1]}")
