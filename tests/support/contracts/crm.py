"""A Salesforce-style REST API for cases: ``PATCH /services/data/vXX.X/sobjects/Case/<ExtIdField>/<value>``
upserts by an external id (201 ``{"id", "success", "errors", "created": true}``, then 200 with
``created: false``), ``PATCH .../Case/<Id>`` answers 204, ``GET .../query?q=<SOQL>`` answers
``{"totalSize", "done", "records"}``; errors are lists of ``{"message", "errorCode"}``; tokens come from
``/services/oauth2/token``. No Idempotency-Key: the external id is how a client makes creation safe."""

from __future__ import annotations

import re
from typing import Any

from tests.support.contracts.server import Auth, ContractFake, query_of
from tests.support.vendor_fake import Scripted, Seen

CODES = {400: "MALFORMED_QUERY", 401: "INVALID_SESSION_ID", 404: "NOT_FOUND"}
SOQL = re.compile(
    r"FROM Order WHERE AccountId = '(?P<account>[A-Za-z0-9]+)' ORDER BY EffectiveDate DESC LIMIT (?P<n>\d+)"
)


class CrmFake(ContractFake):
    token_path = "/services/oauth2/token"
    idempotent = False

    def __init__(self, auth: Auth = "oauth2", external_id_field: str = "Andon_Key__c") -> None:
        super().__init__(auth)
        self.external_id_field = external_id_field
        self.cases: dict[str, dict[str, Any]] = {}
        self.orders: list[dict[str, Any]] = []
        self.locked_rows = 0  # the next N writes meet UNABLE_TO_LOCK_ROW
        base = r"/services/data/v[0-9]+\.0"
        self.route("GET", base + r"/limits", lambda seen, _: Scripted(200, {"DailyApiRequests": {"Max": 15000}}))
        self.route("PATCH", base + r"/sobjects/Case/(?P<field>[A-Za-z0-9_]+__c)/(?P<value>[^/]+)", self._upsert)
        self.route("PATCH", base + r"/sobjects/Case/(?P<id>[A-Za-z0-9]{15,18})", self._update)
        self.route("GET", base + r"/query", self._query)

    def error(self, status: int, message: str, code: str | None = None) -> Scripted:
        return Scripted(status, [{"message": message, "errorCode": code or CODES.get(status, "UNKNOWN_EXCEPTION")}])

    def _lock(self) -> Scripted | None:
        if self.locked_rows:
            self.locked_rows -= 1
            return self.error(400, "unable to obtain exclusive access to this record", "UNABLE_TO_LOCK_ROW")
        return None

    def _upsert(self, seen: Seen, params: dict[str, str]) -> Scripted:
        if params["field"] != self.external_id_field:
            return self.error(404, f"Provided external ID field does not exist or is not accessible: {params['field']}")
        body = seen.json() or {}
        if not body.get("Subject"):
            return self.error(400, "Required fields are missing: [Subject]", "REQUIRED_FIELD_MISSING")
        locked = self._lock()
        if locked:
            return locked
        existing = next((c for c in self.cases.values() if c.get(params["field"]) == params["value"]), None)
        if existing is not None:
            existing.update(body)
            return Scripted(200, {"id": existing["Id"], "success": True, "errors": [], "created": False})
        case_id = f"500{len(self.cases) + 1:012d}AAA"
        self.cases[case_id] = {"Id": case_id, params["field"]: params["value"], "Status": "New", **body}
        return Scripted(201, {"id": case_id, "success": True, "errors": [], "created": True})

    def _update(self, seen: Seen, params: dict[str, str]) -> Scripted:
        case = self.cases.get(params["id"])
        if case is None:
            return self.error(404, "The requested resource does not exist")
        locked = self._lock()
        if locked:
            return locked
        case.update(seen.json() or {})
        return Scripted(204)

    def _query(self, seen: Seen, _: dict[str, str]) -> Scripted:
        found = SOQL.search(query_of(seen).get("q", ""))
        if found is None:
            return self.error(400, "unexpected token in the query")
        records = [
            {"attributes": {"type": "Order", "url": f"/services/data/v59.0/sobjects/Order/{o['Id']}"}, **o}
            for o in self.orders
            if o["AccountId"] == found["account"]
        ]
        records.sort(key=lambda o: str(o["EffectiveDate"]), reverse=True)
        return Scripted(200, {"totalSize": len(records), "done": True, "records": records[: int(found["n"])]})
