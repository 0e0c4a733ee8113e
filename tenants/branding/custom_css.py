"""A partner's own CSS, limited to a safe subset: typography, colours, spacing, borders.

Anything that could load a resource (``url()``, ``@import``, fonts), run code (legacy
``expression()``), place or hide elements over the product's own (``position``, ``display``,
``content``, ``z-index``) or match on attribute values (the basis of CSS data-exfiltration) is refused
with the reason, not silently dropped: the partner sees what did not pass. What passes is
re-serialised from the parsed tokens, so nothing unparsed reaches a browser.
"""

from __future__ import annotations

import tinycss2
from tinycss2 import ast

from andon.platform.http.errors import ValidationFailedError

MAX_CSS_BYTES = 8 * 1024
MAX_ERRORS = 10

_SIDES = ("", "-top", "-right", "-bottom", "-left")
ALLOWED_PROPERTIES: frozenset[str] = frozenset(
    {
        "color",
        "background-color",
        "border-color",
        "border-style",
        "border-width",
        "border-radius",
        "outline-color",
        "font-family",
        "font-size",
        "font-style",
        "font-weight",
        "letter-spacing",
        "line-height",
        "text-align",
        "text-decoration",
        "text-transform",
        "box-shadow",
        "opacity",
        "max-width",
        "gap",
        *(f"padding{s}" for s in _SIDES),
        *(f"margin{s}" for s in _SIDES),
        *(f"border{s}-color" for s in _SIDES[1:]),
        *(f"border{s}-width" for s in _SIDES[1:]),
    }
)
# Colour functions only; url(), image-set(), expression() and friends are not on this list.
ALLOWED_FUNCTIONS = frozenset({"rgb", "rgba", "hsl", "hsla", "var", "calc"})
_SELECTOR_LITERALS = frozenset({".", ",", ">", "+", "~", ":", "*", "(", ")"})
_VALUE_LITERALS = frozenset({",", "/", "-", "+", "*"})


def _selector_problem(tokens: list[ast.Node]) -> str | None:
    for token in tokens:
        if isinstance(token, ast.WhitespaceToken | ast.IdentToken | ast.HashToken | ast.NumberToken):
            continue
        if isinstance(token, ast.LiteralToken) and token.value in _SELECTOR_LITERALS:
            continue
        if isinstance(token, ast.FunctionBlock) and token.lower_name in {"not", "is", "where"}:
            problem = _selector_problem(token.arguments)
            if problem:
                return problem
            continue
        if isinstance(token, ast.SquareBracketsBlock):
            return "attribute selectors ([...]) are not allowed"
        return f"'{tinycss2.serialize([token])}' is not allowed in a selector"
    return None


def _value_problem(name: str, tokens: list[ast.Node]) -> str | None:
    for token in tokens:
        if isinstance(
            token,
            ast.WhitespaceToken
            | ast.IdentToken
            | ast.HashToken
            | ast.NumberToken
            | ast.PercentageToken
            | ast.DimensionToken,
        ):
            continue
        if isinstance(token, ast.LiteralToken) and token.value in _VALUE_LITERALS:
            continue
        if isinstance(token, ast.StringToken) and name == "font-family":
            continue
        if isinstance(token, ast.FunctionBlock) and token.lower_name in ALLOWED_FUNCTIONS:
            problem = _value_problem(name, token.arguments)
            if problem:
                return problem
            continue
        if isinstance(token, ast.URLToken) or (isinstance(token, ast.FunctionBlock) and token.lower_name == "url"):
            return "url() is not allowed: custom CSS may not load anything"
        if isinstance(token, ast.FunctionBlock):
            return f"{token.lower_name}() is not allowed"
        return f"'{tinycss2.serialize([token]).strip()}' is not allowed in a value"
    return None


def _line(node: ast.Node) -> str:
    return f"line {node.source_line}"


def clean_css(text: str) -> str:
    """The CSS re-serialised from what passed, or a refusal naming every problem (by line)."""
    if len(text.encode()) > MAX_CSS_BYTES:
        raise _refuse([f"the CSS is {len(text.encode()) // 1024} KB; the limit is {MAX_CSS_BYTES // 1024} KB"])
    problems: list[str] = []
    kept: list[str] = []
    for rule in tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True):
        if isinstance(rule, ast.AtRule):
            problems.append(f"{_line(rule)}: @{rule.lower_at_keyword} rules are not allowed")
            continue
        if isinstance(rule, ast.ParseError):
            problems.append(f"{_line(rule)}: {rule.message}")
            continue
        if not isinstance(rule, ast.QualifiedRule):
            continue
        problem = _selector_problem(rule.prelude)
        if problem:
            problems.append(f"{_line(rule)}: {problem}")
            continue
        declarations = []
        for decl in tinycss2.parse_blocks_contents(rule.content, skip_comments=True, skip_whitespace=True):
            if isinstance(decl, ast.ParseError):
                problems.append(f"{_line(decl)}: {decl.message}")
            elif isinstance(decl, ast.AtRule):
                problems.append(f"{_line(decl)}: nested @{decl.lower_at_keyword} rules are not allowed")
            elif isinstance(decl, ast.Declaration):
                if decl.lower_name not in ALLOWED_PROPERTIES:
                    problems.append(f"{_line(decl)}: the property '{decl.lower_name}' is not allowed")
                    continue
                problem = _value_problem(decl.lower_name, decl.value)
                if problem:
                    problems.append(f"{_line(decl)}: {decl.lower_name}: {problem}")
                    continue
                important = " !important" if decl.important else ""
                declarations.append(f"  {decl.lower_name}: {tinycss2.serialize(decl.value).strip()}{important};")
            else:
                problems.append(f"{_line(decl)}: only declarations may appear inside a rule")
        selector = tinycss2.serialize(rule.prelude).strip()
        if declarations:
            kept.append(selector + " {\n" + "\n".join(declarations) + "\n}")
    if problems:
        raise _refuse(problems)
    return "\n".join(kept)


def _refuse(problems: list[str]) -> ValidationFailedError:
    shown = problems[:MAX_ERRORS]
    more = f" (and {len(problems) - MAX_ERRORS} more)" if len(problems) > MAX_ERRORS else ""
    return ValidationFailedError(
        "custom CSS refused: " + "; ".join(shown) + more,
        extra={"errors": [{"field": "custom_css", "message": p} for p in shown]},
    )
