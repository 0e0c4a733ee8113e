"""Semantic versions of templates: ordering, and the diff between two versions' YAML."""

from __future__ import annotations

import difflib


def semver(version: str) -> tuple[int, int, int]:
    """``"1.10.0"`` as ``(1, 10, 0)``; the format guarantees three numbers."""
    major, minor, patch = (int(part) for part in version.split("."))
    return major, minor, patch


def newer(version: str, than: str | None) -> bool:
    return than is None or semver(version) > semver(than)


def yaml_diff(base: str, head: str, base_name: str, head_name: str) -> str:
    return "".join(
        difflib.unified_diff(
            base.splitlines(keepends=True), head.splitlines(keepends=True), fromfile=base_name, tofile=head_name
        )
    )
