"""The callbacks of a run: the curves (one panel per metric, integer epoch ticks, the best epoch and
resumptions marked) and the moving average swapped in and out of the model."""

import keras
import numpy as np

from sequencer.callbacks import curves_figure, swap_moving_average


def rows(epochs: int) -> list[dict[str, str]]:
    return [
        {"epoch": str(n), "loss": str(2 / n), "val_loss": str(2.5 / n), "accuracy": "0.5", "val_chrf": "nan"}
        for n in range(1, epochs + 1)
    ]


def test_the_curves_mark_the_best_epoch_and_each_resumption_on_integer_ticks():
    figure = curves_figure(rows(3), best_epoch=2, resumed_after=[1, 2])
    loss, _, chrf = figure.axes
    assert [axes.get_title() for axes in figure.axes] == ["loss", "accuracy", "chrf"]
    lines = {line.get_label(): line for line in loss.get_lines()}
    assert list(lines["training"].get_xdata()) == [1, 2, 3] and "validation" in lines
    assert list(lines["best epoch (2)"].get_xdata()) == [2, 2]  # a vertical line at the best epoch
    resumed = [line for line in loss.get_lines() if line.get_linestyle() == "--"]
    assert [line.get_xdata()[0] for line in resumed] == [1.5, 2.5]  # between the epochs before and after
    figure.canvas.draw()
    assert all(tick == int(tick) for tick in loss.get_xticks())
    assert "validation" not in {line.get_label() for line in chrf.get_lines()}  # no chrF was measured


def test_a_run_without_a_best_epoch_or_resumption_has_only_its_curves():
    figure = curves_figure(rows(1), best_epoch=0, resumed_after=[])
    assert {line.get_label() for line in figure.axes[0].get_lines()} == {"training", "validation"}
    figure.canvas.draw()
    visible = [
        tick
        for tick in figure.axes[0].get_xticks()
        if figure.axes[0].get_xlim()[0] <= tick <= figure.axes[0].get_xlim()[1]
    ]
    assert visible == [1]  # a single epoch still has integer ticks


def test_swapping_the_moving_average_exchanges_weights_and_average_in_place():
    # Pins what callbacks.swap_moving_average takes from Keras 3.15's private SwapEMAWeights._swap_variables.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, use_ema=True, ema_momentum=0.5), loss="mse")
    for _ in range(3):  # train_on_batch, unlike fit, leaves the trained weights in the model
        model.train_on_batch(np.ones((4, 2)), np.full((4, 1), 3.0))
    weights = [variable.numpy() for variable in model.trainable_variables]
    average = [variable.numpy() for variable in model.optimizer._model_variables_moving_average]
    assert not np.allclose(weights[0], average[0])
    swap_moving_average(model)
    assert all(np.allclose(now, then) for now, then in zip(model.get_weights(), average))
    swapped = [variable.numpy() for variable in model.optimizer._model_variables_moving_average]
    assert all(np.allclose(now, then) for now, then in zip(swapped, weights))
