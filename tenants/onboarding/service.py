"""Plant onboarding import: validate a whole file, report every row error, then apply it all or nothing.

Idempotent by ``external_id``: importing the same file twice creates nothing the second time, and a
changed file updates the nodes it names. Parents may come from the same file or already exist.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from andon.platform.audit.service import record
from andon.platform.audit.snapshot import json_safe
from andon.platform.db.ids import new_id
from andon.platform.http.errors import ValidationFailedError
from andon.platform.tenancy.context import TenantContext
from andon.tenants.onboarding.parser import KINDS, RawRow, RowError, parse
from andon.tenants.plant.models import Area, Asset, Line, Site
from andon.tenants.plant.service import PlantService

# Where each kind may hang, tried in this order when resolving parent_external_id.
PARENTS: dict[str, tuple[str, ...]] = {
    "site": (),
    "area": ("site",),
    "line": ("area", "site"),
    "asset": ("line", "site"),
}
FIELDS: dict[str, tuple[str, ...]] = {
    "site": ("name", "timezone", "description"),
    "area": ("name",),
    "line": ("name",),
    "asset": ("name", "asset_type", "manufacturer", "model", "serial_number", "criticality"),
}
LIMITS = {
    "name": 200,
    "external_id": 100,
    "parent_external_id": 100,
    "timezone": 64,
    "description": 2000,
    "asset_type": 100,
    "manufacturer": 100,
    "model": 100,
    "serial_number": 100,
}


@dataclass(slots=True)
class PlannedRow:
    row: RawRow
    kind: str
    external_id: str
    values: dict[str, Any]
    parent: tuple[str, str] | None = None  # (kind, external_id)
    action: str = "create"  # create | update | unchanged
    existing: Any = None
    changes: dict[str, list[Any]] = field(default_factory=dict)


@dataclass(slots=True)
class ImportReport:
    dry_run: bool
    rows: int
    errors: list[RowError]
    summary: dict[str, dict[str, int]]
    applied: bool = False

    @property
    def valid(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "valid": self.valid,
            "applied": self.applied,
            "rows": self.rows,
            "summary": self.summary,
            "errors": [e.as_dict() for e in self.errors],
        }


def _link_change(row: PlannedRow, current: Any, existing: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    """A line moving to another area, or an asset to another line, is a change too."""
    column = {"line": "area_id", "asset": "line_id"}.get(row.kind)
    if column is None or row.parent is None:
        return {}
    parent_kind, ref = row.parent
    if parent_kind == "site":
        new: Any = None
    else:
        parent = existing[parent_kind].get(ref)
        new = parent.id if parent is not None else f"new {parent_kind} {ref}"
    old = getattr(current, column)
    return {column: [old, new]} if old != new else {}


class PlantImportService:
    def __init__(self, session: AsyncSession, ctx: TenantContext, default_timezone: str) -> None:
        self.session = session
        self.ctx = ctx
        self.plant = PlantService(session, ctx)
        self.default_timezone = default_timezone

    def _check_row(self, raw: RawRow, errors: list[RowError]) -> PlannedRow | None:
        v = raw.values
        before = len(errors)
        kind = v.get("kind", "").lower()
        if kind not in KINDS:
            errors.append(RowError(raw.number, "kind", f"'{v.get('kind', '')}' is not one of {', '.join(KINDS)}"))
            return None
        for col in ("external_id", "name"):
            if not v.get(col):
                errors.append(RowError(raw.number, col, "is required"))
        for col, limit in LIMITS.items():
            if len(v.get(col, "")) > limit:
                errors.append(RowError(raw.number, col, f"is longer than {limit} characters"))
        parent = v.get("parent_external_id", "")
        if kind == "site" and parent:
            errors.append(RowError(raw.number, "parent_external_id", "a site has no parent; leave it empty"))
        if kind != "site" and not parent:
            errors.append(
                RowError(
                    raw.number,
                    "parent_external_id",
                    f"is required for a {kind} (the {' or '.join(PARENTS[kind])} it belongs to)",
                )
            )
        for col in ("timezone", "description"):
            if v.get(col) and kind != "site":
                errors.append(RowError(raw.number, col, f"applies to sites only, not to a {kind}"))
        if kind == "site":
            tz = v.get("timezone") or self.default_timezone
            try:
                from zoneinfo import ZoneInfo

                ZoneInfo(tz)
            except (KeyError, ValueError):
                errors.append(RowError(raw.number, "timezone", f"'{tz}' is not a known IANA time zone"))
        if kind == "asset" and v.get("criticality") and v["criticality"] not in ("A", "B", "C"):
            errors.append(RowError(raw.number, "criticality", "must be A, B or C"))
        if len(errors) > before:
            return None
        # Only the columns the file fills in: a re-import with fewer columns leaves the others alone.
        values = {c: v[c] for c in FIELDS[kind] if v.get(c)}
        return PlannedRow(raw, kind, v["external_id"], values, (kind, parent) if parent else None)

    async def plan(self, body: bytes, content_type: str) -> tuple[list[PlannedRow], ImportReport]:
        parsed = parse(body, content_type)
        errors = list(parsed.errors)
        planned: list[PlannedRow] = []
        seen: dict[tuple[str, str], int] = {}
        failed: dict[str, int] = {}  # external id -> row, for rows that did not validate
        for raw in parsed.rows:
            row = self._check_row(raw, errors)
            if row is None:
                if raw.values.get("external_id"):
                    failed.setdefault(raw.values["external_id"], raw.number)
                continue
            key = (row.kind, row.external_id)
            if key in seen:
                errors.append(
                    RowError(
                        raw.number, "external_id", f"{row.kind} '{row.external_id}' already appears on row {seen[key]}"
                    )
                )
                continue
            seen[key] = raw.number
            planned.append(row)

        existing: dict[str, dict[str, Any]] = {}
        for kind in KINDS:
            wanted = {r.external_id for r in planned if r.kind == kind}
            wanted |= {r.parent[1] for r in planned if r.parent and kind in PARENTS[r.kind]}
            existing[kind] = await self.plant.repo(kind).by_external_ids(sorted(wanted))

        in_file = {(r.kind, r.external_id): r for r in planned}
        ok: list[PlannedRow] = []
        for row in planned:
            if row.parent is not None and not self._resolve_parent(row, in_file, existing, failed, errors):
                continue
            current = existing[row.kind].get(row.external_id)
            if current is not None:
                row.existing = current
                row.changes = {
                    k: [getattr(current, k), val] for k, val in row.values.items() if getattr(current, k) != val
                }
                row.changes.update(_link_change(row, current, existing))
                row.action = "update" if row.changes else "unchanged"
            ok.append(row)
        self._check_site_moves(ok, in_file, existing, errors)

        summary = {k: {"create": 0, "update": 0, "unchanged": 0} for k in KINDS}
        for row in ok:
            summary[row.kind][row.action] += 1
        errors.sort(key=lambda e: e.row)
        report = ImportReport(dry_run=True, rows=len(parsed.rows) + len(parsed.errors), errors=errors, summary=summary)
        return ok, report

    def _resolve_parent(
        self,
        row: PlannedRow,
        in_file: dict[tuple[str, str], PlannedRow],
        existing: dict[str, dict[str, Any]],
        failed: dict[str, int],
        errors: list[RowError],
    ) -> bool:
        assert row.parent is not None
        ref = row.parent[1]
        for parent_kind in PARENTS[row.kind]:
            if (parent_kind, ref) in in_file or ref in existing[parent_kind]:
                row.parent = (parent_kind, ref)
                return True
        if ref in failed:
            errors.append(
                RowError(row.row.number, "parent_external_id", f"its parent '{ref}' on row {failed[ref]} has errors")
            )
            return False
        errors.append(
            RowError(
                row.row.number,
                "parent_external_id",
                f"no {' or '.join(PARENTS[row.kind])} with external_id '{ref}' in this file or this customer",
            )
        )
        return False

    def _site_of(
        self, kind: str, ext: str, in_file: dict[tuple[str, str], PlannedRow], existing: dict[str, dict[str, Any]]
    ) -> tuple[str, str | uuid.UUID] | None:
        """The site a node ends up in, as ("file", site external id) or ("db", site uuid)."""
        if kind == "site":
            return ("file", ext)
        row = in_file.get((kind, ext))
        if row is not None and row.parent is not None:
            return self._site_of(row.parent[0], row.parent[1], in_file, existing)
        node = existing[kind].get(ext)
        if node is None:
            return None
        site = next((s for s in existing["site"].values() if s.id == node.site_id), None)
        return ("file", site.external_id) if site is not None and site.external_id else ("db", node.site_id)

    def _check_site_moves(
        self,
        rows: list[PlannedRow],
        in_file: dict[tuple[str, str], PlannedRow],
        existing: dict[str, dict[str, Any]],
        errors: list[RowError],
    ) -> None:
        for row in list(rows):
            if row.existing is None or row.kind == "site" or row.parent is None:
                continue
            new_site = self._site_of(row.parent[0], row.parent[1], in_file, existing)
            site_node = next((s for s in existing["site"].values() if s.id == row.existing.site_id), None)
            old_site = (
                ("file", site_node.external_id) if site_node and site_node.external_id else ("db", row.existing.site_id)
            )
            if new_site != old_site:
                errors.append(
                    RowError(
                        row.row.number,
                        "parent_external_id",
                        f"{row.kind} '{row.external_id}' would move to another site; "
                        "import cannot move nodes between sites",
                    )
                )
                rows.remove(row)

    async def run(self, body: bytes, content_type: str, *, dry_run: bool) -> ImportReport:
        rows, report = await self.plan(body, content_type)
        report.dry_run = dry_run
        if dry_run:
            return report
        if report.errors:
            raise ValidationFailedError(
                f"the import has {len(report.errors)} error(s); nothing was changed",
                extra={"errors": [e.as_dict() for e in report.errors], "report": report.as_dict()},
            )
        await self._apply(rows)
        report.applied = True
        return report

    async def _apply(self, rows: list[PlannedRow]) -> None:
        ids: dict[tuple[str, str], uuid.UUID] = {}
        sites: dict[uuid.UUID, uuid.UUID] = {}  # node id -> its site id
        models: dict[str, type[Site | Area | Line | Asset]] = {"site": Site, "area": Area, "line": Line, "asset": Asset}
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        for kind in KINDS:  # parents before children
            repo = self.plant.repo(kind)
            for node in (await repo.by_external_ids([r.external_id for r in rows if r.kind == kind])).values():
                ids[(kind, node.external_id)] = node.id
                sites[node.id] = node.id if kind == "site" else node.site_id
        for kind in KINDS:
            for parent_kind in PARENTS[kind]:
                refs = [r.parent[1] for r in rows if r.kind == kind and r.parent and r.parent[0] == parent_kind]
                for node in (await self.plant.repo(parent_kind).by_external_ids(refs)).values():
                    ids[(parent_kind, node.external_id)] = node.id
                    sites[node.id] = node.id if parent_kind == "site" else node.site_id
            fresh: list[Any] = []
            for row in (r for r in rows if r.kind == kind):
                links: dict[str, Any] = {}
                if row.parent is not None:
                    parent_id = ids[row.parent]
                    links["site_id"] = sites[parent_id]
                    if row.parent[0] in ("area", "line"):
                        links[f"{row.parent[0]}_id"] = parent_id
                    elif kind in ("line", "asset"):
                        links["area_id" if kind == "line" else "line_id"] = None
                if row.action == "create":
                    defaults = {"timezone": self.default_timezone} if kind == "site" else {}
                    node = models[kind](id=new_id(), external_id=row.external_id, **{**defaults, **row.values}, **links)
                    fresh.append(node)
                    created.append({"kind": kind, "external_id": row.external_id, "id": str(node.id)})
                else:
                    node = row.existing
                    for k, v in {**row.values, **links}.items():
                        if getattr(node, k) != v:
                            row.changes[k] = [getattr(node, k), v]
                            setattr(node, k, v)
                    if row.changes:
                        updated.append(
                            {
                                "kind": kind,
                                "external_id": row.external_id,
                                "id": str(node.id),
                                "changes": json_safe(row.changes),
                            }
                        )
                ids[(kind, row.external_id)] = node.id
                sites[node.id] = node.id if kind == "site" else node.site_id
            # One flush per level: parents are in the database before their children arrive.
            await self.plant.repo(kind).add_many(fresh)
        await self.session.flush()
        if created or updated:
            await record(
                self.session,
                self.ctx.principal,
                "plant.imported",
                target_type="plant_import",
                target_id=None,
                after={"created": created, "updated": updated},
                tenant=self.ctx,
            )
