"""Evaluation on the simulated clock, and the records that training adds to a run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax

EVAL_CHUNK = 4096  # test examples per evaluation call


@dataclass
class TrainingResult:
    """What training adds to a run: the evaluation curve and per-update records."""

    metrics: list[tuple] = field(default_factory=list)  # (update, sim_time, train_loss, test_loss, test_accuracy)
    steps: list[tuple] = field(default_factory=list)  # (update, sim_time, samples, train_loss, *quality.FIELDS)
    summary: dict = field(default_factory=dict)
    params: object = None  # the final parameters (a pytree of NumPy arrays)

    METRICS_FIELDS = ("update", "sim_time", "train_loss", "test_loss", "test_accuracy")
    STEPS_FIELDS = (
        "update", "sim_time", "samples", "train_loss", "stale_cosine", "stale_error", "batch_cosine", "batch_error",
    )  # fmt: skip

    def metric_lines(self):
        return (",".join(_cell(v) for v in row) + "\n" for row in self.metrics)

    def step_lines(self):
        return (",".join(_cell(v) for v in row) + "\n" for row in self.steps)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return repr(v) if isinstance(v, float) else str(v)


class Evaluator:
    """Test loss and accuracy of parameters, appended as rows of the evaluation curve.

    Args:
        config: the run (its targets).
        model: the model (whether it has a notion of accuracy).
        dataset: the test set, put on the device in chunks of ``EVAL_CHUNK`` examples.
        evaluate: the jitted ``(params, x, y) -> (loss sum, correct count)`` of one chunk.
    """

    def __init__(self, config, model, dataset, evaluate):
        self.target_accuracy, self.target_loss = config.target_accuracy, config.target_loss
        self.has_accuracy, self.n = model.has_accuracy, len(dataset.x_test)
        self._evaluate = evaluate
        self.test = [
            (jax.device_put(dataset.x_test[i : i + EVAL_CHUNK]), jax.device_put(dataset.y_test[i : i + EVAL_CHUNK]))
            for i in range(0, len(dataset.x_test), EVAL_CHUNK)
        ]

    def evaluate(self, params) -> tuple[float, float | None]:
        """Test loss and accuracy (None without a notion of accuracy) of ``params``."""
        loss_sum, correct = 0.0, 0
        for x, y in self.test:
            batch_loss, batch_correct = self._evaluate(params, x, y)
            loss_sum, correct = loss_sum + batch_loss, correct + batch_correct
        accuracy = float(correct) / self.n if self.has_accuracy else None
        return float(loss_sum) / self.n, accuracy

    def record(self, result: TrainingResult, params, update: int, time: float, train_loss: float | None):
        """Evaluate ``params`` at (``update``, ``time`` seconds) and append a metrics row.

        Returns:
            ((update, time) if the target is reached else None, why the loss diverged or None).
        """
        test_loss, accuracy = self.evaluate(params)
        result.metrics.append((update, time, train_loss, test_loss, accuracy))
        diverged = None
        if not math.isfinite(test_loss) or (train_loss is not None and not math.isfinite(train_loss)):
            diverged = (
                f"the loss became {test_loss if not math.isfinite(test_loss) else train_loss} "
                f"by update {update} (t={time:g} s): lower --lr; metrics so far are kept"
            )
        hit_acc = self.target_accuracy is not None and accuracy is not None and accuracy >= self.target_accuracy
        hit_loss = self.target_loss is not None and test_loss <= self.target_loss
        return ((update, time) if (hit_acc or hit_loss) else None), diverged


def describe_device() -> str:
    """The device JAX computes on, e.g. ``cpu`` or ``NVIDIA H100 80GB HBM3``."""
    device = jax.devices()[0]
    return device.device_kind if device.platform != "cpu" else "cpu"
