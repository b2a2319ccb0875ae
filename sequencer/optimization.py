"""What training minimises and how: the loss, the optimizer and its learning-rate schedule.

The loss is cross-entropy on integer targets, with padding left out through the padding mask
the models' outputs carry; with `label_smoothing` it is the smoothed cross-entropy of Szegedy et
al. (2016). The learning rate rises linearly over `warmup_steps` and then stays constant, falls
as 1/sqrt(step) (`inverse_sqrt`, the schedule of Vaswani et al. with its peak set directly by
`learning_rate`), or follows Keras' cosine decay to 0 at the last step (`cosine`). With
`ema_decay` the optimizer also keeps Keras' exponential moving average of the weights (Polyak
averaging), which `callbacks.MovingAverageWeights` puts in the model to validate and save.
"""

from __future__ import annotations

import keras
from keras import ops

from sequencer.config import Config


@keras.saving.register_keras_serializable(package="sequencer")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`peak` reached linearly over `warmup_steps`, then constant or (`decay="inverse_sqrt"`)
    peak * sqrt(warmup_steps / step)."""

    def __init__(self, peak: float, warmup_steps: int, decay: str):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.decay = decay

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # Keras counts the updates done; this is the number of the next
        warmup = float(max(self.warmup_steps, 1))
        rising = self.peak * step / warmup
        after = self.peak * ops.sqrt(warmup / step) if self.decay == "inverse_sqrt" else ops.full_like(step, self.peak)
        return ops.where(step < warmup, rising, after)

    def get_config(self) -> dict:
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "decay": self.decay}


@keras.saving.register_keras_serializable(package="sequencer")
class SmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer targets against probabilities, each target smoothed: 1 - e on it,
    e spread evenly over the vocabulary (`label_smoothing` = e)."""

    def __init__(self, label_smoothing: float, name: str = "smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probabilities = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))  # (B, T, V)
        targets = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        target_term = -ops.squeeze(ops.take_along_axis(log_probabilities, targets, axis=-1), -1)  # (B, T)
        uniform_term = -ops.mean(log_probabilities, axis=-1)  # (B, T)
        return (1.0 - self.label_smoothing) * target_term + self.label_smoothing * uniform_term

    def get_config(self) -> dict:
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def learning_rate(config: Config, total_steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate of `config` for a run of `total_steps` batches.

    Keras' schedules count batches, accumulated or not; `warmup_steps` counts optimizer updates,
    so with `accumulate_steps` the warm-up lasts that many times more batches.
    """
    peak, warmup = config.learning_rate, config.warmup_steps * config.accumulate_steps
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else peak,
            decay_steps=max(total_steps - warmup, 1),
            warmup_target=peak if warmup else None,
            warmup_steps=warmup,
        )
    if config.constant_learning_rate:
        return peak
    return WarmupSchedule(peak, warmup, config.lr_schedule)


def optimizer(config: Config, total_steps: int) -> keras.optimizers.Optimizer:
    """The Keras optimizer of `config`, its schedule set for `total_steps` batches."""
    settings = {"learning_rate": learning_rate(config, total_steps)}
    if config.clipnorm:
        settings["clipnorm"] = config.clipnorm
    if config.accumulate_steps > 1:  # Keras applies the mean of the accumulated gradients, clipped
        settings["gradient_accumulation_steps"] = config.accumulate_steps
    if config.ema_decay:  # Keras moves the average after every batch, accumulated or not
        settings.update(use_ema=True, ema_momentum=config.ema_decay)
    return keras.optimizers.get({"class_name": config.optimizer, "config": settings})


def loss(config: Config) -> keras.losses.Loss | str:
    """Both `loss` names train with the sparse form, because the targets are ids."""
    if config.label_smoothing:
        return SmoothedCrossentropy(config.label_smoothing)
    return "sparse_categorical_crossentropy"
