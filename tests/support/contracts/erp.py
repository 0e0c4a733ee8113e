"""An ERP's plant API: batches with a stock status (``UNRESTRICTED``, ``QUALITY_INSPECTION``,
``BLOCKED``), quality holds and purchase requisitions (replayed by ``Idempotency-Key``), open sales
orders by material as
``{"data": [...], "meta": {"total": n}}``; errors are ``{"error": {"code", "message"}}``, a batch that
another transaction holds answers 409 ``BATCH_LOCKED``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.contracts.server import Auth, ContractFake, query_of
from tests.support.vendor_fake import Scripted, Seen

STATUSES = ("UNRESTRICTED", "QUALITY_INSPECTION", "BLOCKED")
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 422: "VALIDATION_FAILED"}


class ErpFake(ContractFake):
    def __init__(self, auth: Auth = "oauth2", plant: str = "DE01") -> None:
        super().__init__(auth)
        self.plant = plant
        self.batches: dict[tuple[str, str], str] = {}
        self.locked: set[tuple[str, str]] = set()
        self.orders: list[dict[str, Any]] = []
        self.holds: list[dict[str, Any]] = []
        self.requisitions: list[dict[str, Any]] = []
        base = rf"/api/v1/plants/{plant}"
        self.route("GET", base, lambda seen, _: Scripted(200, {"plant": plant, "name": "Test plant"}))
        self.route("PATCH", base + r"/materials/(?P<material>[^/]+)/batches/(?P<batch>[^/]+)", self._status)
        self.route("GET", base + r"/orders", self._orders)
        self.route("POST", base + r"/quality-holds", self._hold)
        self.route("POST", base + r"/purchase-requisitions", self._requisition)

    def error(self, status: int, message: str, code: str | None = None) -> Scripted:
        return Scripted(status, {"error": {"code": code or CODES.get(status, "ERROR"), "message": message}})

    def _status(self, seen: Seen, params: dict[str, str]) -> Scripted:
        key = (params["material"], params["batch"])
        if key not in self.batches:
            return self.error(404, f"batch {key[1]} of material {key[0]} does not exist in plant {self.plant}")
        if key in self.locked:
            return self.error(409, f"batch {key[1]} is being changed by another user", "BATCH_LOCKED")
        body = seen.json() or {}
        if body.get("stockStatus") not in STATUSES:
            return self.error(422, f"stockStatus must be one of {', '.join(STATUSES)}")
        self.batches[key] = body["stockStatus"]
        changed = datetime.now(UTC).isoformat()
        return Scripted(
            200, {"material": key[0], "batch": key[1], "stockStatus": body["stockStatus"], "changedAt": changed}
        )

    def _orders(self, seen: Seen, _: dict[str, str]) -> Scripted:
        query = query_of(seen)
        found = [
            o
            for o in self.orders
            if o["material"] == query.get("material")
            and o["status"] == query.get("status", "OPEN")
            and ("customer" not in query or o["customerId"] == query["customer"])
        ]
        found.sort(key=lambda o: str(o["requestedDate"]))
        return Scripted(200, {"data": found[: int(query.get("limit", "50"))], "meta": {"total": len(found)}})

    def _hold(self, seen: Seen, _: dict[str, str]) -> Scripted:
        body = seen.json() or {}
        if not body.get("material") or not body.get("reason"):
            return self.error(400, "material and reason are required")
        hold = {"id": f"QH-{len(self.holds) + 1:05d}", "status": "ACTIVE", **body}
        self.holds.append(hold)
        return Scripted(201, {"hold": {"id": hold["id"], "status": "ACTIVE"}})

    def _requisition(self, seen: Seen, _: dict[str, str]) -> Scripted:
        body = seen.json() or {}
        quantity = body.get("quantity")
        if not body.get("material") or not body.get("justification"):
            return self.error(400, "material and justification are required")
        if not isinstance(quantity, int | float) or isinstance(quantity, bool) or quantity <= 0:
            return self.error(422, "quantity must be a positive number")
        number = f"PR-{len(self.requisitions) + 1:06d}"
        self.requisitions.append({"number": number, "status": "OPEN", **body})
        return Scripted(201, {"requisition": {"number": number, "status": "OPEN"}})
