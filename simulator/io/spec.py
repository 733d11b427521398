"""The SPEC mini-language: ``family:key=value,key=value``.

A value is a number or a nested spec written ``family(key=value,...)``, so that a model can
be built from others::

    exponential:rate=1
    straggler:base=lognormal(mu=0,sigma=0.3),p=0.02,factor=8
    straggler:base=constant(value=1),p=0.1,delay=exponential(rate=0.2)

Parsing is purely syntactic: it yields a :class:`Spec` tree; the meaning of families and
parameters lives with the models (``latency.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .boundary import check_nesting
from .errors import InputError

SPEC_NESTING = 32  # deepest nested spec, e.g. straggler:base=straggler(base=...) 32 times


@dataclass(frozen=True)
class Spec:
    """A parsed spec: a family name and its parameters (numbers or nested specs)."""

    family: str
    params: dict[str, Value]

    def __str__(self) -> str:
        if not self.params:
            return self.family
        return f"{self.family}:{_format_params(self.params)}"

    def nested(self) -> str:
        """The form used inside another spec: ``family(key=value,...)``."""
        return f"{self.family}({_format_params(self.params)})"


Value = float | Spec
"""A parameter value: a number or a nested spec."""


def _format_params(params: dict[str, Value]) -> str:
    return ",".join(f"{k}={v.nested() if isinstance(v, Spec) else format_number(v)}" for k, v in params.items())


def format_number(x: float) -> str:
    """Shortest round-trip text of a number (``1`` rather than ``1.0``)."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def parse_spec(text: str, *, what: str = "SPEC") -> Spec:
    """Parse ``family:key=value,...``.

    Args:
        text: the spec as the user typed it.
        what: how to name the spec in error messages (e.g. ``--latency``).

    Raises:
        InputError: on any syntax error or nesting deeper than ``SPEC_NESTING``, naming the spec
            and the problem.
    """
    text = text.strip()
    short = text if len(text) <= 60 else text[:57] + "..."
    check_nesting(text, what=f"{what} {short!r}", limit=SPEC_NESTING)  # the parser recurses once per level
    family, sep, rest = text.partition(":")
    family = family.strip()
    if not family:
        raise InputError(f"{what} {text!r}: missing family name (example: exponential:rate=1)")
    if "(" in family or ")" in family or "=" in family:
        raise InputError(f"{what} {text!r}: expected FAMILY:KEY=VALUE,... (example: exponential:rate=1)")
    if sep and not rest.strip():
        raise InputError(f"{what} {text!r}: no parameters after ':'")
    params = _parse_params(rest, text, what) if sep else {}
    return Spec(family, params)


def _parse_params(body: str, text: str, what: str) -> dict[str, Value]:
    params: dict[str, Value] = {}
    for item in _split_top_level(body, text, what):
        key, eq, raw = item.partition("=")
        key, raw = key.strip(), raw.strip()
        if not eq or not key or not raw:
            raise InputError(f"{what} {text!r}: malformed parameter {item.strip()!r} (expected KEY=VALUE)")
        if key in params:
            raise InputError(f"{what} {text!r}: parameter {key!r} given twice")
        params[key] = _parse_value(key, raw, text, what)
    return params


def _parse_value(key: str, raw: str, text: str, what: str) -> Value:
    if raw.endswith(")") and "(" in raw:
        family, _, inner = raw[:-1].partition("(")
        family = family.strip()
        if not family:
            raise InputError(f"{what} {text!r}: parameter {key!r} has a nested spec without a family")
        return Spec(family, _parse_params(inner, text, what) if inner.strip() else {})
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"{what} {text!r}: parameter {key!r} is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{what} {text!r}: parameter {key!r} must be finite, got {raw!r}")
    return value


def _split_top_level(body: str, text: str, what: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InputError(f"{what} {text!r}: unbalanced ')'")
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    if depth != 0:
        raise InputError(f"{what} {text!r}: unbalanced '('")
    parts.append(body[start:])
    return parts
