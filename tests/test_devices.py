"""TensorFlow's threads, and training over several devices and machines with tf.distribute, on CPUs.

Threads and logical devices must be configured before TensorFlow starts, and a cluster needs
processes of its own, so these tests run in fresh Python processes.
"""

import csv
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, run_folders, tiny_config

from sequencer import devices
from sequencer.devices import (
    check_accumulation,
    cpu_has_bfloat16,
    fit_under_multi_worker,
    make_strategy,
    precision_policy,
)
from sequencer.errors import ConfigError
from sequencer.training import Trainer

ROOT = Path(__file__).resolve().parents[1]

ONE_AND_TWO_CPUS = textwrap.dedent(
    """
    import csv, json, sys
    from pathlib import Path
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[2])
    from conftest import tiny_config
    from sequencer import Preprocessor, Trainer

    curves = {}
    settings = json.loads(sys.argv[3])
    for distribution in ("none", "mirrored"):
        config = tiny_config(Path(sys.argv[1]) / distribution, distribution=distribution, epochs="2", **settings)
        trainer = Trainer(config)
        run_dir = trainer.train(Preprocessor(config).load())
        with open(run_dir / "metrics.csv", newline="") as stream:
            rows = list(csv.DictReader(stream))
        curves[distribution] = {
            "replicas": trainer.strategy.num_replicas_in_sync,
            "loss": [float(row["loss"]) for row in rows],
            "val_loss": [float(row["val_loss"]) for row in rows],
            "averaged": json.loads((run_dir / "summary.json").read_text()).get("averaging", {}).get("averaged"),
        }
    print(json.dumps(curves))
    """
)


def python(*args, env=None, **kwargs):
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SEQUENCER_")}
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**environment, **(env or {})},
        **kwargs,
    )


TRANSFORMER = {
    "model": "transformer",
    "token_level": "subword",
    "subword_vocab": "400",
    "model_dim": "16",
    "num_heads": "2",
    "ffn_dim": "32",
    "optimizer": "adam",
    "warmup_steps": "4",
    "label_smoothing": "0.1",
    # Snapshots of the weights every 2 updates, the last 2 averaged at the end.
    "average_last": "2",
    "average_every": "2",
}


# Token batches: the budget is the global batch's, split among the replicas.
TOKENS = {"batch_tokens": "400", "optimizer": "adam"}


# The moving average of the weights (ema_decay) is swapped in and out of mirrored variables.
MOVING_AVERAGE = {"ema_decay": "0.9"}


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings",
    [{}, TRANSFORMER, TOKENS, MOVING_AVERAGE],
    ids=["lstm", "transformer-subword", "tokens", "moving-average"],
)
def test_mirrored_over_two_cpus_follows_the_one_device_loss_curve(tmp_path, settings):
    arguments = [str(tmp_path), str(Path(__file__).parent), json.dumps(settings)]
    process = python("-c", ONE_AND_TWO_CPUS, *arguments, cwd=ROOT)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    curves = json.loads(stdout.strip().splitlines()[-1])
    assert (curves["none"]["replicas"], curves["mirrored"]["replicas"]) == (1, 2)
    for metric in ("loss", "val_loss"):
        assert curves["mirrored"][metric] == pytest.approx(curves["none"][metric], rel=0.02)
    if "average_last" in settings:
        assert None not in (curves["mirrored"]["averaged"], curves["none"]["averaged"])  # both averaged
        assert curves["mirrored"]["averaged"] == pytest.approx(curves["none"]["averaged"], rel=0.02)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("shard_pairs", ["1000000", "100"], ids=["one-shard-shared", "shards-of-their-own"])
def test_two_workers_train_one_epoch_and_only_the_chief_writes_a_run(tmp_path, shard_pairs):
    """With one shard both workers read it and take their part of each batch; with a shard or
    more for each, each worker streams shards of its own. The corpus is prepared by both, once."""
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        arguments = ["--config", str(TINY_CONFIG), "--model_dir", str(tmp_path / "models"), "--epochs", "1"]
        arguments += ["--shard_pairs", shard_pairs]
        processes.append(
            python(
                str(ROOT / "scripts" / "train.py"),
                *arguments,
                "--distribution",
                "multi_worker",
                env={"TF_CONFIG": json.dumps(tf_config)},
                cwd=tmp_path,
            )
        )
    for process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    runs = run_folders(tmp_path / "models")
    assert len(runs) == 1 and (runs[0] / "model.keras").is_file()
    with open(runs[0] / "metrics.csv", newline="") as stream:
        assert len(list(csv.DictReader(stream))) == 1
    assert len(list((tmp_path / "models" / "prepared").iterdir())) == 1  # the first to finish preparing won


THREADS = textwrap.dedent(
    """
    import tensorflow as tf
    from sequencer.devices import configure_device
    from sequencer.errors import ConfigError

    configure_device("cpu", 1)
    threading = tf.config.threading
    print(threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
    tf.reduce_sum(tf.ones(3)).numpy()  # TensorFlow's runtime starts
    configure_device("cpu", 1)  # the threads it has: nothing to change
    configure_device("cpu", 0)  # whatever it has
    try:
        configure_device("cpu", 2)
    except ConfigError as error:
        print(error)
    """
)


@pytest.mark.slow
def test_threads_are_set_before_tensorflow_starts_and_refused_after():
    process = python("-c", THREADS, cwd=ROOT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert out.splitlines() == [
        "1 1",
        "threads=2 cannot take effect: TensorFlow has already started in this process",
    ]


def test_multi_worker_needs_a_cluster(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError) as caught:
        make_strategy("multi_worker")
    assert "TF_CONFIG" in str(caught.value)


def test_gradient_accumulation_over_replicas_is_a_config_error(tmp_path):
    for distribution in ("mirrored", "multi_worker"):
        with pytest.raises(ConfigError, match=f"accumulate_steps=2 does not work with distribution={distribution}"):
            check_accumulation(2, distribution)
        check_accumulation(1, distribution)
    check_accumulation(2, "none")
    with pytest.raises(ConfigError, match="accumulate_steps=2 does not work with distribution=mirrored"):
        Trainer(tiny_config(tmp_path, distribution="mirrored", accumulate_steps="2"))  # a library caller too


def test_keras_models_still_hold_the_strategy_attribute_the_multi_worker_workaround_clears():
    # devices.fit_under_multi_worker sets Keras 3.15's private Model._distribute_strategy to None
    # (keras-team/keras#20585); a Keras release that renames it must fail here, not on a cluster.
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    assert "_distribute_strategy" in vars(model), f"keras {keras.__version__} moved Model._distribute_strategy"
    fit_under_multi_worker(model)
    assert model._distribute_strategy is None


def test_mixed_precision_chooses_keras_policy_and_refuses_what_the_device_cannot_do(monkeypatch, caplog):
    assert precision_policy("false") == "float32"
    with pytest.raises(ConfigError, match=r"mixed_precision=float16 needs a GPU, .*bfloat16 computes on a CPU"):
        precision_policy("float16")  # these tests see no GPU
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: True)
    with caplog.at_level(logging.WARNING, "sequencer"):
        assert precision_policy("bfloat16") == "mixed_bfloat16"
    assert caplog.messages == []
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: False)
    with caplog.at_level(logging.WARNING, "sequencer"):
        assert precision_policy("bfloat16") == "mixed_bfloat16"  # runs, slowly
    assert caplog.messages == [
        "mixed_precision=bfloat16: this CPU has neither avx512_bf16 nor amx_bf16, so bfloat16 is emulated; "
        "training runs, but slower than in float32"
    ]


def test_bfloat16_on_a_gpu_older_than_ampere_is_a_config_error(monkeypatch):
    import tensorflow as tf

    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "get_visible_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda device: {"compute_capability": (7, 5)})
    with pytest.raises(ConfigError, match=r"needs a GPU of compute capability 8\.0 or more \(Ampere\); .*:0 has 7\.5"):
        precision_policy("bfloat16")
    assert precision_policy("float16") == "mixed_float16"


@pytest.mark.parametrize(
    ("flags", "native"),
    [("fpu sse2 avx512f avx512_bf16 avx512_vnni", True), ("fpu amx_tile amx_bf16", True), ("fpu sse2 avx512f", False)],
)
def test_the_cpu_flags_say_whether_bfloat16_is_native(tmp_path, flags, native):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    assert cpu_has_bfloat16(cpuinfo) is native
    assert cpu_has_bfloat16(tmp_path / "missing") is False  # not Linux
