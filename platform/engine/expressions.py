"""The two expression languages of a workflow: CEL for decisions and values (typed, side-effect
free, compiled once), sandboxed Jinja2 for text rendered into step inputs and messages."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import cel
from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

# Templates see the run context only; no attribute of a Python object beyond what the sandbox allows,
# no mutation, and an undefined name is an error rather than an empty string.
_JINJA = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class ExpressionError(Exception):
    """An expression that does not compile, or fails on the context it was given."""


@functools.lru_cache(maxsize=4096)
def compile_cel(source: str) -> Any:
    try:
        return cel.compile(source)
    except ValueError as exc:
        raise ExpressionError(str(exc).splitlines()[0]) from None


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    try:
        return compile_cel(source).execute(dict(context))  # andon: unscoped-ok (a CEL program, not SQL)
    except ExpressionError:
        raise
    except KeyError as exc:
        raise ExpressionError(f"{source}: no value for {exc}") from None
    except Exception as exc:  # the CEL runtime's own errors (type mismatch, division by zero, ...)
        raise ExpressionError(f"{source}: {exc}") from None


def check_template(source: str) -> None:
    try:
        _JINJA.parse(source)
    except TemplateSyntaxError as exc:
        raise ExpressionError(f"line {exc.lineno}: {exc.message}") from None


@functools.lru_cache(maxsize=4096)
def _template(source: str) -> Any:
    return _JINJA.from_string(source)


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Strings are templates; lists and objects are rendered item by item; anything else is kept."""
    if isinstance(value, str):
        if "{" not in value:
            return value
        try:
            return _template(value).render(**context)
        except (UndefinedError, SecurityError, TypeError, ValueError) as exc:
            raise ExpressionError(f"{value!r}: {exc}") from None
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value
