"""A QMS's REST API: ``POST /api/v1/nonconformances`` (``{"nonconformance": {"id": "NC-…", "status",
"links": {"web"}}}``) and ``POST /api/v1/capas`` (``{"capa": {...}}``, linked nonconformances must
exist), both replayed by ``Idempotency-Key``; validation errors are 422 ``{"errors": [{"field",
"message"}]}``."""

from __future__ import annotations

from typing import Any

from tests.support.contracts.server import Auth, ContractFake
from tests.support.vendor_fake import Scripted, Seen

SEVERITIES = ("minor", "major", "critical")


class QmsFake(ContractFake):
    def __init__(self, auth: Auth = "api_key") -> None:
        super().__init__(auth)
        self.nonconformances: dict[str, dict[str, Any]] = {}
        self.capas: dict[str, dict[str, Any]] = {}
        self.route("GET", r"/api/v1/nonconformances", self._list)
        self.route("POST", r"/api/v1/nonconformances", self._nonconformance)
        self.route("POST", r"/api/v1/capas", self._capa)

    def error(self, status: int, message: str, field: str | None = None) -> Scripted:
        return Scripted(status, {"errors": [{"field": field or "", "message": message}]})

    def _list(self, _: Seen, __: dict[str, str]) -> Scripted:
        return Scripted(200, {"items": list(self.nonconformances.values())[:1]})

    def _nonconformance(self, seen: Seen, _: dict[str, str]) -> Scripted:
        body = seen.json() or {}
        if body.get("severity") not in SEVERITIES:
            return self.error(422, f"must be one of {', '.join(SEVERITIES)}", "severity")
        if not body.get("title"):
            return self.error(422, "is required", "title")
        nc_id = f"NC-{len(self.nonconformances) + 1:06d}"
        record = {"id": nc_id, "status": "OPEN", "links": {"web": f"{self.url}/nc/{nc_id}"}, **body}
        self.nonconformances[nc_id] = record
        return Scripted(201, {"nonconformance": record})

    def _capa(self, seen: Seen, _: dict[str, str]) -> Scripted:
        body = seen.json() or {}
        missing = [n for n in body.get("nonconformanceIds") or [] if n not in self.nonconformances]
        if missing:
            return self.error(422, f"unknown nonconformance {missing[0]}", "nonconformanceIds")
        capa_id = f"CAPA-{len(self.capas) + 1:05d}"
        record = {"id": capa_id, "status": "INITIATED", **body}
        self.capas[capa_id] = record
        return Scripted(201, {"capa": {"id": capa_id, "status": "INITIATED", "dueDate": body.get("dueDate")}})
