"""ServiceNow's Table API for one table (``incident``): ``POST /api/now/table/incident`` and ``PATCH
.../<sys_id>`` answer ``{"result": {...}}`` with string values (``sysparm_fields`` narrows them), errors
are ``{"error": {"message", "detail"}, "status": "failure"}``, tokens come from ``/oauth_token.do``.
ServiceNow has no Idempotency-Key: a repeated POST opens a second record (``correlation_id`` is how a
client traces one)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from tests.support.contracts.server import Auth, ContractFake, query_of
from tests.support.vendor_fake import Scripted, Seen


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


class ServiceNowFake(ContractFake):
    token_path = "/oauth_token.do"
    idempotent = False

    def __init__(self, auth: Auth = "basic", table: str = "incident") -> None:
        super().__init__(auth)
        self.table = table
        self.records: dict[str, dict[str, Any]] = {}
        self.journal: list[tuple[str, str, str]] = []  # (sys_id, field, text)
        base = rf"/api/now/table/{table}"
        self.route("POST", base, self._create)
        self.route("GET", base, self._list)
        self.route("PATCH", base + r"/(?P<sys_id>[0-9a-f]{32})", self._update)
        self.route("GET", base + r"/(?P<sys_id>[0-9a-f]{32})", self._get)

    def error(self, status: int, message: str) -> Scripted:
        detail = {401: "Required to provide Auth information", 404: "Record doesn't exist or ACL restricts the record"}
        return Scripted(status, {"error": {"message": message, "detail": detail.get(status, "")}, "status": "failure"})

    def _result(self, seen: Seen, record: dict[str, Any]) -> dict[str, Any]:
        fields = query_of(seen).get("sysparm_fields")
        shown = {k: v for k, v in record.items() if not fields or k in fields.split(",")}
        return {"result": shown}

    def _create(self, seen: Seen, _: dict[str, str]) -> Scripted:
        body = seen.json()
        if not isinstance(body, dict):
            return self.error(400, "Exception while reading request")
        sys_id = uuid.uuid4().hex
        # The Table API stores every field as text and ignores the ones the table does not have.
        record = {k: str(v) for k, v in body.items() if k not in ("comments", "work_notes")}
        record.update(
            sys_id=sys_id,
            number=f"INC{10001 + len(self.records):07d}",
            state=record.get("state", "1"),
            sys_created_on=_now(),
            sys_updated_on=_now(),
        )
        self.records[sys_id] = record
        return Scripted(201, self._result(seen, record))

    def _update(self, seen: Seen, params: dict[str, str]) -> Scripted:
        record = self.records.get(params["sys_id"])
        if record is None:
            return self.error(404, "No Record found")
        body = seen.json()
        if not isinstance(body, dict):
            return self.error(400, "Exception while reading request")
        for field in ("comments", "work_notes"):
            if field in body:
                self.journal.append((params["sys_id"], field, str(body.pop(field))))
        if body.get("state") == "6" and not (body.get("close_code") or record.get("close_code")):
            return self.error(400, "Operation Failed: Data Policy Exception: Resolution code is mandatory")
        record.update({k: str(v) for k, v in body.items()}, sys_updated_on=_now())
        return Scripted(200, self._result(seen, record))

    def _get(self, seen: Seen, params: dict[str, str]) -> Scripted:
        record = self.records.get(params["sys_id"])
        return Scripted(200, self._result(seen, record)) if record else self.error(404, "No Record found")

    def _list(self, seen: Seen, _: dict[str, str]) -> Scripted:
        limit = int(query_of(seen).get("sysparm_limit", "10000"))
        return Scripted(200, {"result": [self._result(seen, r)["result"] for r in self.records.values()][:limit]})
