"""No SQL outside repositories: request and task code reach tenant data only through scoped repositories.

A statement builder (``select``, ``insert``, ``update``, ``delete``, ``text``) or a session call that
runs SQL (``execute``, ``scalar``, ``scalars``, ``get``) outside a ``repository.py`` fails this test.
The kernel's own database plumbing is listed below with its reason; anything else needs the marker
``# andon: unscoped-ok (reason)`` on the line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("platform", "tenants", "templates_catalog", "connectors", "billing", "frontend")
BUILDERS = {"select", "insert", "update", "delete", "text"}
SESSION_CALLS = {"execute", "scalar", "scalars", "get", "stream", "stream_scalars"}
# Kernel modules that are database plumbing rather than request or task code.
ALLOWED = {
    "platform/db/scope.py": "sets the row-level-security settings and named locks of the transaction",
    "platform/db/engine.py": "sets SQLite pragmas on each new connection",
    "platform/db/migrate.py": "grants privileges as the schema owner",
    "platform/db/repository.py": "the tenant-scoped repository base itself",
    "platform/http/health.py": "readiness runs SELECT 1",
}
MARKER = "andon: unscoped-ok"


def _names_a_session(node: ast.expr) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return "session" in name.lower()


def _violations(path: Path, rel: str | None = None) -> list[str]:
    rel = rel or path.relative_to(ROOT).as_posix()
    if path.name == "repository.py" or rel in ALLOWED:
        return []
    source = path.read_text()
    lines = source.splitlines()
    found = []
    tree = ast.parse(source)
    # Names the module ``sqlalchemy`` is bound to (``import sqlalchemy as sa``).
    modules = {
        a.asname or a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import)
        for a in n.names
        if a.name == "sqlalchemy"
    }
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in modules
            and node.func.attr in BUILDERS
            and MARKER not in lines[node.lineno - 1]
        ):
            found.append(f"{rel}:{node.lineno} builds SQL with {ast.unparse(node.func)}")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            for alias in node.names:
                if alias.name in BUILDERS and MARKER not in lines[node.lineno - 1]:
                    found.append(f"{rel}:{node.lineno} imports sqlalchemy.{alias.name}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_CALLS
            # "execute" and friends run SQL whatever the receiver is called; "get" only on a session.
            and (node.func.attr != "get" or _names_a_session(node.func.value))
            and MARKER not in lines[node.lineno - 1]
        ):
            found.append(f"{rel}:{node.lineno} runs SQL via {ast.unparse(node.func)}")
    return found


def test_no_sql_outside_repositories() -> None:
    files = [p for d in DOMAINS for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 20
    violations = [v for p in files for v in _violations(p)]
    assert violations == []


def test_the_lint_catches_a_query_in_a_service(tmp_path: Path) -> None:
    bad = tmp_path / "service.py"
    bad.write_text("from sqlalchemy import select\nasync def f(session):\n    await session.execute(select(1))\n")
    assert len(_violations(bad, "tenants/plant/service.py")) == 2
    aliased = tmp_path / "aliased.py"
    aliased.write_text("import sqlalchemy as sa\nasync def f(db):\n    await db.execute(sa.select(1))\n")
    assert len(_violations(aliased, "tenants/plant/aliased.py")) == 2
    marked = tmp_path / "marked.py"
    marked.write_text("async def f(self):\n    await self.session.execute(q)  # andon: unscoped-ok (probe)\n")
    assert _violations(marked, "tenants/plant/marked.py") == []
