"""``POST /api/v1/customers/{id}/plant-imports``: a CSV or JSON body, ``?dry_run=true`` for the report."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import Parameter

from andon.platform.auth.rbac import P
from andon.platform.http.params import DbSession, Tenant
from andon.tenants.onboarding.service import PlantImportService
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY
from andon.tenants.orgs.service import CustomerService


class PlantImportController(Controller):
    path = "/api/v1/customers/{customer_id:uuid}/plant-imports"
    tags = ["Onboarding"]
    dependencies = TENANT_DEPENDENCY

    @post(
        "/",
        opt={"permission": P.ONBOARDING_IMPORT},
        status_code=200,
        summary="Import sites, areas, lines and assets",
        description=(
            "Body: CSV (text/csv) with columns kind, external_id, name, parent_external_id, timezone, "
            "description, asset_type, manufacturer, model, serial_number, criticality; or JSON "
            "(application/json), a list of objects with the same fields. With dry_run=true nothing is "
            "written and the report lists every row error; otherwise the import is all or nothing."
        ),
    )
    async def import_plant(
        self,
        request: Request[Any, Any, Any],
        db_session: DbSession,
        tenant: Tenant,
        dry_run: bool = Parameter(default=False, description="validate and report only"),
    ) -> dict[str, Any]:
        body = await request.body()
        customer = await CustomerService(db_session, tenant.principal).get(tenant.tenant_id)
        service = PlantImportService(db_session, tenant, customer.default_timezone)
        report = await service.run(body, request.headers.get("content-type", ""), dry_run=dry_run)
        return report.as_dict()
