"""A CMMS's work-order API in the MaintainX style: ``/v1/workorders`` with numeric ids, priorities
NONE/LOW/MEDIUM/HIGH, ``{"workOrder": ...}`` and ``{"workOrders": [...], "nextCursor": ...}`` answers,
``{"errors": [{"message": ...}]}`` for bad requests and a 409 ``ASSET_LOCKED`` while an asset is
under a lockout."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.support.contracts.server import Auth, ContractFake, query_of
from tests.support.vendor_fake import Scripted, Seen

PRIORITIES = ("NONE", "LOW", "MEDIUM", "HIGH")


class CmmsFake(ContractFake):
    def __init__(self, auth: Auth = "bearer") -> None:
        super().__init__(auth)
        self.work_orders: dict[int, dict[str, Any]] = {}
        self.locked_assets: set[int] = set()
        self.route("POST", r"/v1/workorders", self._create)
        self.route("GET", r"/v1/workorders/(?P<id>[0-9]+)", self._get)
        self.route("GET", r"/v1/workorders", self._list)

    def error(self, status: int, message: str) -> Scripted:
        if status == 400:
            return Scripted(400, {"errors": [{"message": message}]})
        return Scripted(status, {"message": message})

    def _create(self, seen: Seen, _: dict[str, str]) -> Scripted:
        body = seen.json() or {}
        if not isinstance(body.get("title"), str) or not body["title"]:
            return self.error(400, "title is required")
        if not isinstance(body.get("assetId"), int):
            return self.error(400, "assetId must be an integer")
        if body.get("priority", "NONE") not in PRIORITIES:
            return self.error(400, f"priority must be one of {', '.join(PRIORITIES)}")
        if body["assetId"] in self.locked_assets:
            return Scripted(409, {"code": "ASSET_LOCKED", "message": f"asset {body['assetId']} is locked out"})
        number = len(self.work_orders) + 1
        order = {
            "id": 90000 + number,
            "sequentialId": number,
            "title": body["title"],
            "description": body.get("description"),
            "assetId": body["assetId"],
            "priority": body.get("priority", "NONE"),
            "dueDate": body.get("dueDate"),
            "assignees": body.get("assignees") or [],
            "status": "OPEN",
            "createdAt": datetime.now(UTC).isoformat(),
            "completedAt": None,
        }
        self.work_orders[order["id"]] = order
        return Scripted(201, {"id": order["id"], "sequentialId": number, "status": "OPEN"})

    def _get(self, _: Seen, params: dict[str, str]) -> Scripted:
        order = self.work_orders.get(int(params["id"]))
        if order is None:
            return self.error(404, f"work order {params['id']} not found")
        return Scripted(200, {"workOrder": order})

    def _list(self, seen: Seen, _: dict[str, str]) -> Scripted:
        query = query_of(seen)
        found = [
            o
            for o in sorted(self.work_orders.values(), key=lambda o: o["id"], reverse=True)
            if ("assetId" not in query or str(o["assetId"]) == query["assetId"])
            and ("status" not in query or o["status"] == query["status"])
        ]
        limit = int(query.get("limit", "50"))
        return Scripted(200, {"workOrders": found[:limit], "nextCursor": "next-page" if len(found) > limit else None})
