"""The built-in catalog: one template per production-support scenario Andon ships, read from
``templates_catalog/catalog/*.yaml`` once per process (a broken file fails loudly at first use,
and the test suite checks every one)."""

from __future__ import annotations

import functools
from pathlib import Path

from andon.templates_catalog.dsl.format import Template
from andon.templates_catalog.dsl.load import parse

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"


def catalog_files() -> list[Path]:
    return sorted(CATALOG_DIR.glob("*.yaml"))


@functools.cache
def builtin_templates() -> dict[str, tuple[Template, str]]:
    """Each built-in template by key, with its YAML source."""
    found: dict[str, tuple[Template, str]] = {}
    for path in catalog_files():
        text = path.read_text(encoding="utf-8")
        template = parse(text, path.name)
        if path.stem != template.template:
            raise ValueError(f"{path.name}: the file is named after its template key, '{template.template}'")
        found[template.template] = (template, text)
    return found
