"""A supplier portal's REST API: ``POST /api/v1/suppliers/<id>/messages`` (replayed by
``Idempotency-Key``) answers ``{"message": {"id", "status": "SENT", "sentAt"}}``; ``GET
/api/v1/asns/<number>`` answers ``{"asn": {...}}``; errors are ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.contracts.server import Auth, ContractFake
from tests.support.vendor_fake import Scripted, Seen

CATEGORIES = ("quality", "delivery", "general")


class SupplierPortalFake(ContractFake):
    def __init__(self, auth: Auth = "api_key") -> None:
        super().__init__(auth)
        self.suppliers: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        self.asns: dict[str, dict[str, Any]] = {}
        self.route("GET", r"/api/v1/me", lambda seen, _: Scripted(200, {"buyer": "andon"}))
        self.route("POST", r"/api/v1/suppliers/(?P<supplier>[^/]+)/messages", self._message)
        self.route("GET", r"/api/v1/asns/(?P<number>[^/]+)", self._asn)

    def error(self, status: int, message: str) -> Scripted:
        codes = {400: "invalid_request", 401: "unauthorized", 404: "not_found", 422: "invalid_request"}
        return Scripted(status, {"error": {"code": codes.get(status, "error"), "message": message}})

    def _message(self, seen: Seen, params: dict[str, str]) -> Scripted:
        if params["supplier"] not in self.suppliers:
            return self.error(404, f"supplier {params['supplier']} is not connected to this buyer")
        body = seen.json() or {}
        if body.get("category") not in CATEGORIES or not body.get("subject") or not body.get("body"):
            return self.error(422, "subject, body and a category (quality, delivery, general) are required")
        message = {
            "id": f"msg_{len(self.messages) + 1:06d}",
            "status": "SENT",
            "sentAt": datetime.now(UTC).isoformat(),
            "supplierId": params["supplier"],
            **body,
        }
        self.messages.append(message)
        return Scripted(201, {"message": {k: message[k] for k in ("id", "status", "sentAt")}})

    def _asn(self, _: Seen, params: dict[str, str]) -> Scripted:
        asn = self.asns.get(params["number"])
        return Scripted(200, {"asn": asn}) if asn else self.error(404, f"ASN {params['number']} not found")
