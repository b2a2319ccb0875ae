"""Checkpoint averaging: the element-wise mean of the weights of a run's last checkpoints.

Averaging the last checkpoints of a run (Vaswani et al., 2017, averaged the last 5 or 20;
OpenNMT-tf recommends it over ensembles) evens out the noise of the last updates at no cost in
training time, and gives one model, as fast to decode as any other. Only models of one
architecture can be averaged: the weights are matched by position and shape.
"""

from __future__ import annotations

import numpy as np

from sequencer.errors import DataError


def average_weights(checkpoints: dict[str, list[np.ndarray]]) -> list[np.ndarray]:
    """The mean of each weight over `checkpoints` ({name: a model's `get_weights()`}, the names for messages)."""
    names = list(checkpoints)
    reference = [weight.shape for weight in checkpoints[names[0]]]
    total = [np.zeros(shape, np.float64) for shape in reference]
    for name, weights in checkpoints.items():
        shapes = [weight.shape for weight in weights]
        if shapes != reference:
            raise DataError(
                f"{name} and {names[0]} have different architectures ({len(shapes)} weights of shapes "
                f"{shapes[:3]}... against {len(reference)} of {reference[:3]}...); only one model's checkpoints average"
            )
        for sum_, weight in zip(total, weights):
            sum_ += weight
    dtypes = [weight.dtype for weight in checkpoints[names[0]]]
    return [(sum_ / len(checkpoints)).astype(dtype) for sum_, dtype in zip(total, dtypes)]
