"""``andon templates``: check template files, list the built-in catalog."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def templates() -> None:
    """Workflow templates (YAML): validate files, list the built-in catalog."""


@templates.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check each FILE; print every problem as FILE:LINE: PATH: MESSAGE. Exit 1 if any file is refused."""
    from andon.templates_catalog.dsl.load import TemplateError, parse

    refused = 0
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            click.echo(f"{path}: not UTF-8 text", err=True)
            refused += 1
            continue
        try:
            template = parse(text, str(path))
        except TemplateError as exc:
            refused += 1
            for problem in exc.problems:
                where = f"{path}:{problem.line}" if problem.line else str(path)
                click.echo(f"{where}: {problem.path + ': ' if problem.path else ''}{problem.message}", err=True)
            continue
        steps = len(template.workflow.get("steps") or [])
        click.echo(f"{path}: ok ({template.template} {template.version}, {steps} steps)")
    if refused:
        click.echo(f"{refused} of {len(files)} file(s) refused", err=True)
    sys.exit(1 if refused else 0)


@templates.command("list")
def list_templates() -> None:
    """The built-in catalog: key, version, category, name."""
    from andon.templates_catalog.builtin import builtin_templates

    rows = [(t.template, t.version, t.category, t.name) for t, _ in builtin_templates().values()]
    width = max(len(r[0]) for r in rows)
    for key, version, category, name in rows:
        click.echo(f"{key:<{width}}  {version:<7}  {category:<11}  {name}")
