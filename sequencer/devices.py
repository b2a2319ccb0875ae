"""Where TensorFlow computes: `device=auto|cpu|gpu|gpu:N`, and over how many devices and machines.

`distribution` picks a tf.distribute strategy; Keras' `fit` does the rest once the model is
built and compiled in the strategy's scope. `batch_size` is the global batch: every step's pairs
are split among all replicas (see `training.make_dataset`), so a step sees the same pairs however
many devices share it.

TensorFlow is imported by the functions that need it, so that `check_cluster` can run before it starts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sequencer.errors import ConfigError

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from sequencer.config import Config

log = logging.getLogger(__name__)


def setup(config: Config) -> tf.distribute.Strategy:
    """Everything process-wide that training needs before any model exists, in one call: the
    device and threads, the distribution strategy (returned), the precision policy, the seeds and
    TensorFlow's op determinism.

    Same seed, same config, same CPU: the same weights, run after run (except with XLA, which
    TensorFlow's op determinism does not cover, so Keras would not compile with it). Mixed
    precision is one of Keras' policies (`precision_policy`).
    """
    import keras
    import tensorflow as tf

    configure_device(config.device, config.threads)
    strategy = make_strategy(config.distribution)
    if strategy is not tf.distribute.get_strategy():
        check_accumulation(
            config.accumulate_steps, "auto (mirrored)" if config.distribution == "auto" else config.distribution
        )
    keras.mixed_precision.set_global_policy(precision_policy(config.mixed_precision))
    keras.utils.set_random_seed(config.seed)
    if config.jit_compile == "true":
        log.info("jit_compile=true: TensorFlow's op determinism excludes XLA, so reruns may differ slightly")
    else:
        tf.config.experimental.enable_op_determinism()
    return strategy


def precision_policy(mixed_precision: str) -> str:
    """Keras' dtype policy for `mixed_precision` (false, float16 or bfloat16) on the devices TensorFlow
    sees; ConfigError for a precision the device cannot compute in.

    Either mixed policy computes in 16 bits and keeps the weights, the loss, the softmax and the
    layer norms in float32, so a run saves float32 weights and loads anywhere. float16 pays off
    only on a GPU, and needs one. bfloat16 needs a GPU of compute capability 8.0 (Ampere) or
    more, or the CPU: fast where it computes bfloat16 itself (`cpu_has_bfloat16`), elsewhere
    emulated, slowly, with a warning.
    """
    import tensorflow as tf

    if mixed_precision == "false":
        return "float32"
    gpus = tf.config.get_visible_devices("GPU")
    if mixed_precision == "float16":
        if not gpus:
            raise ConfigError(
                "mixed_precision=float16 needs a GPU, and TensorFlow sees none on this machine "
                "(mixed_precision=bfloat16 computes on a CPU)"
            )
        return "mixed_float16"
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0)
        if capability < (8, 0):
            raise ConfigError(
                f"mixed_precision=bfloat16 needs a GPU of compute capability 8.0 or more (Ampere); {gpu.name} has "
                f"{'.'.join(map(str, capability))}: use mixed_precision=float16 on it"
            )
    if not gpus and not cpu_has_bfloat16():
        log.warning(
            "mixed_precision=bfloat16: this CPU has neither avx512_bf16 nor amx_bf16, so bfloat16 is emulated; "
            "training runs, but slower than in float32"
        )
    return "mixed_bfloat16"


def cpu_has_bfloat16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bfloat16 itself: `avx512_bf16` or `amx_bf16` among the flags of
    Linux's /proc/cpuinfo (False where there is no such file)."""
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    flags = {flag for line in lines if line.startswith("flags") for flag in line.partition(":")[2].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def configure_device(device: str, threads: int = 0) -> None:
    """Make only the chosen device visible, with GPU memory growth on, and set TensorFlow's threads.

    Must run before TensorFlow first touches a GPU or runs an operation. `auto` uses every GPU
    there is, or the CPU. Memory growth lets a GPU be shared with other processes instead of
    being taken whole. `threads` (0: TensorFlow's choice) sizes both of TensorFlow's thread
    pools: on a machine of few cores, a server decodes faster when TensorFlow leaves a core to
    the event loop that reads and answers requests (docs/serving.md).
    """
    import tensorflow as tf

    _set_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cpu":
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        return
    if device.startswith("gpu"):
        index = int(device.partition(":")[2] or 0)
        if index >= len(gpus):
            raise ConfigError(f"device={device}, but TensorFlow sees {len(gpus)} GPU(s) on this machine")
        gpus = [gpus[index]]
        tf.config.set_visible_devices(gpus, "GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)


def _set_threads(threads: int) -> None:
    """TensorFlow's intra-op and inter-op threads; once its runtime has started, they can no longer change."""
    import tensorflow as tf

    threading = tf.config.threading
    current = (threading.get_intra_op_parallelism_threads(), threading.get_inter_op_parallelism_threads())
    if threads == 0 or current == (threads, threads):
        return
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # "... cannot be modified after initialization"
        raise ConfigError(
            f"threads={threads} cannot take effect: TensorFlow has already started in this process"
        ) from None


def make_strategy(distribution: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `distribution=auto|none|mirrored|multi_worker`.

    mirrored: MirroredStrategy over the visible GPUs, or over the logical CPUs when there is no
    GPU. multi_worker: MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment
    variable. auto: mirrored when more than one GPU is visible, else one device.
    """
    import tensorflow as tf

    if distribution == "auto":  # visible devices, not logical ones: listing those would start TensorFlow's runtime
        distribution = "mirrored" if len(tf.config.get_visible_devices("GPU")) > 1 else "none"
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        gpus = [device.name for device in tf.config.list_logical_devices("GPU")]
        return tf.distribute.MirroredStrategy(gpus or [device.name for device in tf.config.list_logical_devices("CPU")])
    # Collective operations must be set up before TensorFlow's runtime starts: nothing above runs first.
    check_cluster(distribution)
    return tf.distribute.MultiWorkerMirroredStrategy()


def check_cluster(distribution: str) -> None:
    """ConfigError if `distribution=multi_worker` has no cluster to work in: the TF_CONFIG
    environment variable, as JSON. Needs no TensorFlow runtime, so train.py checks it first."""
    if distribution != "multi_worker":
        return
    if not os.environ.get("TF_CONFIG"):
        raise ConfigError("distribution=multi_worker needs the cluster in the TF_CONFIG environment variable")
    try:
        json.loads(os.environ["TF_CONFIG"])
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({error})") from None


def check_accumulation(accumulate_steps: int, distribution: str) -> None:
    """ConfigError for gradient accumulation over several replicas (any `distribution` but none
    and auto, or the one auto chose): Keras 3 applies the accumulated gradients in a tf.cond,
    where tf.distribute cannot all-reduce them. Needs no TensorFlow, so train.py checks it first."""
    if accumulate_steps > 1 and distribution not in ("none", "auto"):
        raise ConfigError(
            f"accumulate_steps={accumulate_steps} does not work with distribution={distribution}; "
            "a larger batch_size or batch_tokens, which the replicas share, gives the effective batch instead"
        )


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: always, except on the non-chief workers of a cluster.

    The chief is the `chief` task, or worker 0 when the cluster has no chief (TensorFlow's rule).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


@contextmanager
def worker_scratch(strategy: tf.distribute.Strategy) -> Iterator[Path | None]:
    """None on the process that writes the run; a temporary folder, deleted afterwards, on the
    other workers of a multi-worker cluster, which save what the chief saves (TensorFlow's
    advice: saving may take part in collective operations) and throw it away."""
    if is_chief(strategy):
        yield None
        return
    scratch = Path(tempfile.mkdtemp(prefix="sequencer-worker-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def fit_under_multi_worker(model: keras.Model) -> None:
    """Two changes that let Keras 3's `fit` run under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Before training, Keras reduces a first batch across the replicas to build the model, which
    fails under this strategy; the model is built already, and with the strategy taken from the
    scope `fit` runs in rather than from the model, Keras skips that step. That is the private
    attribute `_distribute_strategy` of Keras 3.15's Model, this project's one use of it
    (tests/test_devices.py pins it). After each step, Keras averages the replicas' logged values
    along axis 0, which scalars do not have; as vectors of one value they average as they should.
    """
    import tensorflow as tf

    model._distribute_strategy = None

    def as_vectors(step):
        return lambda data: {name: tf.reshape(value, [1]) for name, value in step(data).items()}

    model.train_step = as_vectors(model.train_step)
    model.test_step = as_vectors(model.test_step)
