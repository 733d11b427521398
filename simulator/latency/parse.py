"""The SPEC registry: ``family:key=value,...`` to a latency model, with one-line errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from scipy import stats

from ..io.errors import InputError, named
from ..io.spec import Spec, parse_spec
from .empirical import TRACE_FAMILIES, parse_trace_latency
from .models import Constant, LatencyModel, ScipyLatency, Straggler

# the SPEC registry --------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One parameter of a family: its check, and its default (None = required)."""

    check: str  # "positive" | "nonneg" | "real" | "probability" | "factor" | "model"
    default: float | None = None


_CHECKS = {
    "positive": (lambda v: v > 0, "> 0"),
    "nonneg": (lambda v: v >= 0, ">= 0"),
    "real": (lambda v: True, "a number"),
    "probability": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "factor": (lambda v: v >= 1, ">= 1"),
}


def _scipy(make):
    return lambda spec, **kw: ScipyLatency(make(**kw), spec)


FAMILIES: dict[str, tuple[dict[str, Param], Callable[..., LatencyModel]]] = {
    "constant": ({"value": Param("positive")}, lambda spec, value: Constant(value, spec)),
    "exponential": ({"rate": Param("positive")}, _scipy(lambda rate: stats.expon(scale=1 / rate))),
    "shifted-exponential": (
        {"shift": Param("nonneg"), "rate": Param("positive")},
        _scipy(lambda shift, rate: stats.expon(loc=shift, scale=1 / rate)),
    ),
    "lognormal": (
        {"mu": Param("real"), "sigma": Param("positive")},
        _scipy(lambda mu, sigma: stats.lognorm(s=sigma, scale=math.exp(mu))),
    ),
    "gamma": (
        {"shape": Param("positive"), "scale": Param("positive")},
        _scipy(lambda shape, scale: stats.gamma(a=shape, scale=scale)),
    ),
    "weibull": (
        {"shape": Param("positive"), "scale": Param("positive")},
        _scipy(lambda shape, scale: stats.weibull_min(c=shape, scale=scale)),
    ),
    "pareto": (
        {"alpha": Param("positive"), "scale": Param("positive")},
        _scipy(lambda alpha, scale: stats.pareto(b=alpha, scale=scale)),
    ),
    "straggler": (
        {
            "base": Param("model"),
            "p": Param("probability"),
            "factor": Param("factor", default=1.0),
            "delay": Param("model", default=0.0),
        },
        lambda spec, base, p, factor, delay: Straggler(base, p, factor, delay or None, spec),
    ),
}


def parse_latency(
    text: str, *, what: str = named("latency"), trace_format: str = "csv", time_scale: float = 1.0
) -> LatencyModel:
    """Build a latency model from a SPEC string such as ``exponential:rate=1`` or ``trace:PATH``.

    Args:
        text: the SPEC.
        what: how to name it in error messages.
        trace_format, time_scale: how to read the file of a trace family (see ``traces.py``).

    Raises:
        InputError: unknown family, missing or unknown parameter, value out of range, bad trace.
    """
    family = text.partition(":")[0].strip()
    if family in TRACE_FAMILIES:
        return parse_trace_latency(text, what, trace_format, time_scale)
    if family and family not in FAMILIES:
        known = ", ".join([*FAMILIES, *TRACE_FAMILIES])
        raise InputError(f"{what} {text!r}: unknown latency family {family!r} (known: {known})")
    return build_latency(parse_spec(text, what=what), text, what)


def build_latency(spec: Spec, text: str, what: str) -> LatencyModel:
    if spec.family not in FAMILIES:
        known = ", ".join(FAMILIES)
        raise InputError(f"{what} {text!r}: unknown latency family {spec.family!r} (known: {known})")
    params, build = FAMILIES[spec.family]
    where = f"{what} {text!r}: {spec.family}"
    unknown = [k for k in spec.params if k not in params]
    if unknown:
        raise InputError(f"{where}: unknown parameter {unknown[0]!r} (expected: {', '.join(params)})")
    values = {}
    for name, param in params.items():
        if name not in spec.params:
            if param.default is None:
                raise InputError(f"{where}: missing parameter {name!r} (expected: {', '.join(params)})")
            values[name] = param.default
            continue
        raw = spec.params[name]
        if param.check == "model":
            if not isinstance(raw, Spec):
                raise InputError(f"{where}: parameter {name!r} must be a model such as exponential(rate=1)")
            values[name] = build_latency(raw, text, what)
            continue
        if isinstance(raw, Spec):
            raise InputError(f"{where}: parameter {name!r} must be a number, got {raw.nested()!r}")
        ok, expected = _CHECKS[param.check]
        if not ok(raw):
            raise InputError(f"{where}: parameter {name!r} must be {expected}, got {raw:g}")
        values[name] = raw
    if spec.family == "straggler" and values["factor"] == 1 and not values["delay"]:
        raise InputError(f"{where}: give a slowdown 'factor' > 1 or an extra 'delay' model (or both)")
    return build(spec, **values)
