"""What a training run reports at its end: the final, steadier and best evaluations, the target
(first crossing, at an evaluation and interpolated between two), and divergence.

A run ends at its budget: ``--steps``, ``--until`` (simulated seconds), ``--budget-gradients``
(gradients applied), or earlier at a target (``--stop-at-target``) or on divergence. Its last
evaluation is at that end, so ``accuracy_at_budget`` and ``loss_at_budget`` compare strategies at
equal simulated time or equal gradients; one evaluation swings, so the mean of the last three and
the best are reported beside it.
"""

from __future__ import annotations

import math

import numpy as np

from .evaluation import describe_device

LAST = 3  # evaluations averaged at the end


def _number(x: float) -> int | float:
    """``x`` as an int when it is one (so a constant count prints as before)."""
    return int(x) if float(x).is_integer() else float(x)


def summary(trainer, result, reached, stopped_early: bool, applied: int) -> dict:
    """``summary.json``'s training keys.

    Args:
        trainer: the :class:`~stragglersim.training.trainer.Trainer` at the end of its run.
        result: its :class:`~stragglersim.training.evaluation.TrainingResult` (the evaluations).
        reached: (update, time) of the first evaluation at the target, or None.
        stopped_early: the run ended before ``--steps`` (target, divergence or budget).
        applied: the updates applied.
    """
    config = trainer.config
    used = trainer._samples[:applied]
    samples = float(np.mean(used)) if used else trainer.per_update * config.batch_size
    final = result.metrics[-1]
    out = {
        "model": config.model,
        "dataset": config.dataset,
        "batch_size": config.batch_size,
        "effective_batch_size": _number(samples),  # mean examples per update
        "gradients_per_update": _number(samples / config.batch_size),  # mean gradients averaged per update
        "optimizer": config.optimizer,
        "lr": config.lr,
        "param_count": trainer.model.param_count(trainer.params),
        "param_bytes": config.param_bytes,
        "device": describe_device(),
        "final_test_loss": final[3],
        "final_test_accuracy": final[4],
        "final_train_loss": final[2],
        "target_accuracy": config.target_accuracy,
        "target_loss": config.target_loss,
        "time_to_target": reached[1] if reached else None,
        "updates_to_target": reached[0] if reached else None,
        "stopped_at_target": bool(reached and stopped_early and not trainer.diverged),
        "evaluations": len(result.metrics),
        "diverged": bool(trainer.diverged),
        "diverged_at": trainer.diverged_at,
        "diverged_reason": trainer.diverged,
        "evaluated_on": "validation" if config.validation_split is not None else "test",
    }
    return out | at_budget(result.metrics) | interpolated(result.metrics, reached, config)


def at_budget(metrics: list[tuple]) -> dict:
    """The evaluation at the run's end, the mean of the last ``LAST`` and the best, from the rows
    ``(update, sim_time, train_loss, test_loss, accuracy)`` (non-finite losses are not the best)."""
    final = metrics[-1]
    last = [row for row in metrics[-LAST:] if row[0] > 0] or [metrics[0]]  # the untrained start is not among them
    losses = [row[3] for row in last]
    out = {
        "accuracy_at_budget": final[4],
        "loss_at_budget": final[3],
        "mean_last3_accuracy": float(np.mean([row[4] for row in last])) if final[4] is not None else None,
        "mean_last3_loss": float(np.mean(losses)),
    }
    finite = [row for row in metrics if math.isfinite(row[3])]
    best_loss = min(finite, key=lambda row: row[3]) if finite else None
    out["best_loss"] = best_loss[3] if best_loss else None
    scored = [row for row in finite if row[4] is not None]
    best = max(scored, key=lambda row: row[4]) if scored else None  # the first of equals
    out |= {
        "best_accuracy": best[4] if best else None,
        "best_accuracy_update": best[0] if best else None,
        "best_accuracy_time": best[1] if best else None,
    }
    return out


def interpolated(metrics: list[tuple], reached, config) -> dict:
    """When the target was first crossed, interpolated linearly between the evaluation before
    and the one at the target (``time_to_target`` is that evaluation's time): the keys
    ``time_to_target_interpolated`` and ``updates_to_target_interpolated``, None if not reached."""
    none = {"time_to_target_interpolated": None, "updates_to_target_interpolated": None}
    if not reached:
        return none
    at = next(i for i, row in enumerate(metrics) if (row[0], row[1]) == tuple(reached))
    if at == 0:
        return {"time_to_target_interpolated": metrics[0][1], "updates_to_target_interpolated": float(metrics[0][0])}
    before, after = metrics[at - 1], metrics[at]
    fractions = []
    if config.target_accuracy is not None and after[4] is not None and after[4] >= config.target_accuracy:
        fractions.append(_fraction(before[4], after[4], config.target_accuracy))
    if config.target_loss is not None and after[3] <= config.target_loss:
        fractions.append(_fraction(-before[3], -after[3], -config.target_loss))
    f = min(fractions)
    return {
        "time_to_target_interpolated": before[1] + f * (after[1] - before[1]),
        "updates_to_target_interpolated": before[0] + f * (after[0] - before[0]),
    }


def _fraction(before: float, after: float, target: float) -> float:
    """Where between ``before`` (below ``target``) and ``after`` (at or above it, so above ``before``;
    both finite: a run stops at a non-finite loss) the line crosses it."""
    return min(1.0, max(0.0, (target - before) / (after - before)))
