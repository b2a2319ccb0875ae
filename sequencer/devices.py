"""Choosing where TensorFlow computes: `device=auto|cpu|gpu|gpu:N`."""

from __future__ import annotations

import tensorflow as tf

from sequencer.errors import ConfigError


def configure_device(device: str) -> None:
    """Make only the chosen device visible, with GPU memory growth on.

    Must run before TensorFlow first touches a GPU. `auto` uses every GPU there is, or the CPU.
    Memory growth lets a GPU be shared with other processes instead of being taken whole.
    """
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
