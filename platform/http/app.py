"""The application factory: the one place that assembles the kernel and the domain routes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import CacheControlHeader, State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler
from sqlalchemy.exc import DBAPIError, IntegrityError

import andon
from andon.connectors.ingress.cloudevents import CloudEventsController
from andon.connectors.sources.controllers import SOURCE_CONTROLLERS
from andon.frontend.auth.controllers import AccountPageController, SignInController, TokenPagesController
from andon.frontend.customer.controllers import CUSTOMER_CONSOLE
from andon.frontend.home import HomeController
from andon.frontend.nav import nav_for
from andon.frontend.operator.health import OperatorHealthController
from andon.frontend.operator.partners import OperatorPartnersController
from andon.frontend.pages import PageContextMiddleware, dress_error_page
from andon.frontend.partner.controllers import PartnerBrandingPageController, PartnerConsoleController
from andon.platform.alerts.controllers import AlertController, IncidentController
from andon.platform.audit.controllers import AuditController
from andon.platform.auth.controllers import ApiKeyController, RoleController
from andon.platform.auth.guards import require_permission
from andon.platform.auth.middleware import AuthenticationMiddleware
from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.events.relay import Relay
from andon.platform.http.dependencies import DEPENDENCIES
from andon.platform.http.health import HealthController
from andon.platform.http.problems import EXCEPTION_HANDLERS, problem_response
from andon.platform.http.request_context import RequestContextMiddleware
from andon.platform.identity.controllers import MeController
from andon.platform.identity.oidc import OidcMetadataCache
from andon.platform.observability.logging import configure_logging
from andon.platform.workers.actors import declare_actors, start_worker
from andon.platform.workers.broker import build_broker
from andon.tenants.access.controllers import (
    CustomerApiKeyController,
    CustomerAuditController,
    PartnerApiKeyController,
)
from andon.tenants.access.people import (
    CustomerIdentityProviderController,
    CustomerUserController,
    PartnerIdentityProviderController,
    PartnerUserController,
)
from andon.tenants.branding.controllers import (
    BrandingController,
    CustomerMarkController,
    CustomerMarkImageController,
    PublicBrandAssetController,
)
from andon.tenants.branding.customer_mark import CustomerMarks
from andon.tenants.branding.service import BrandsByHost, portal_url
from andon.tenants.onboarding.controllers import PlantImportController
from andon.tenants.orgs.controllers import CustomerController, PartnerController
from andon.tenants.orgs.dependencies import TENANT_DEPENDENCY
from andon.tenants.orgs.service import org_is_active
from andon.tenants.plant.controllers import PLANT_CONTROLLERS

OPENAPI_PATH = "/api/docs"
TEMPLATES_DIR = Path(andon.__file__).resolve().parent / "frontend" / "templates"
STATIC_DIR = Path(andon.__file__).resolve().parent / "frontend" / "static"


def route_handlers() -> list[ControllerRouterHandler]:
    return [
        HealthController,
        HomeController,
        SignInController,
        BrandingController,
        PublicBrandAssetController,
        CustomerMarkController,
        CustomerMarkImageController,
        AccountPageController,
        PartnerConsoleController,
        PartnerBrandingPageController,
        OperatorPartnersController,
        OperatorHealthController,
        *CUSTOMER_CONSOLE,
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            opt={"public": True},
            include_in_schema=False,
            cache_control=CacheControlHeader(max_age=86400, public=True),
        ),
        TokenPagesController,
        MeController,
        CustomerUserController,
        PartnerUserController,
        CustomerIdentityProviderController,
        PartnerIdentityProviderController,
        PartnerController,
        CustomerController,
        *PLANT_CONTROLLERS,
        PlantImportController,
        ApiKeyController,
        CustomerApiKeyController,
        PartnerApiKeyController,
        RoleController,
        AuditController,
        # Kernel controllers under /customers/{customer_id} ask for ``tenant``; the tenants domain opens it.
        Router(path="/", route_handlers=[AlertController, IncidentController], dependencies=TENANT_DEPENDENCY),
        CloudEventsController,
        *SOURCE_CONTROLLERS,
        CustomerAuditController,
    ]


def _database_refusal(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    # SQLSTATE class 22 is "data exception": PostgreSQL refuses a value SQLite accepts (a NUL character
    # in text, an out-of-range number). That is the caller's input, so 422; anything else is ours, 500.
    code = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    if code.startswith("22"):
        return problem_response(
            request,
            422,
            "a value in the request cannot be stored (for example a NUL character in text)",
            slug="validation-failed",
        )
    return EXCEPTION_HANDLERS[Exception](request, exc)


def _integrity_conflict(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[Any]:
    # Pre-checks in services name the field; this is the backstop for a race between two writers.
    return problem_response(request, 409, "the change conflicts with an existing record", slug="conflict")


def _page_globals(engine: JinjaTemplateEngine) -> None:
    engine.engine.globals["nav_for"] = nav_for


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings()
    configure_logging(settings.log_level, json=settings.log_json)
    engine = create_engine(settings.database)
    state = State(
        {
            "settings": settings,
            "engine": engine,
            "sessionmaker": create_sessionmaker(engine),
            "broker": build_broker(settings),
            "secretbox": SecretBox(settings.encryption_keys()),
            "oidc_cache": OidcMetadataCache(),
            # The kernel asks the tenants domain whether a caller's organisation is active.
            "org_active": org_is_active,
            # Pages ask the tenants domain which partner's brand a host name wears.
            "brand_for_host": BrandsByHost(),
            "customer_mark": CustomerMarks(),
            "portal_url": portal_url,
        }
    )

    worker_db = declare_actors(state.broker, settings)
    state.relay = Relay(state.sessionmaker, state.broker)
    state.worker = None

    async def _start_workers(app: Litestar) -> None:
        if settings.workers.in_process:
            app.state.relay.start()
            app.state.worker = start_worker(app.state.broker, settings.workers.threads)

    async def _dispose(app: Litestar) -> None:
        await app.state.relay.stop()
        if app.state.worker is not None:
            await asyncio.to_thread(app.state.worker.stop)
        await worker_db.dispose()
        await app.state.engine.dispose()

    openapi = OpenAPIConfig(
        title="Andon API",
        version=andon.__version__,
        description="Production-support orchestration for manufacturers. Authenticate with "
        "`Authorization: Bearer <API key>`; errors are RFC 9457 problem+json.",
        path=OPENAPI_PATH,
        render_plugins=[ScalarRenderPlugin(path="/"), SwaggerRenderPlugin(path="/swagger")],
    )
    app = Litestar(
        route_handlers=route_handlers(),
        state=state,
        dependencies=DEPENDENCIES,
        guards=[require_permission],
        middleware=[
            DefineMiddleware(AuthenticationMiddleware, exclude=["^/health/", f"^{OPENAPI_PATH}"]),
            PageContextMiddleware,  # after authentication: a customer's pages wear its own logo too
        ],
        exception_handlers={**EXCEPTION_HANDLERS, IntegrityError: _integrity_conflict, DBAPIError: _database_refusal},
        openapi_config=openapi,
        template_config=TemplateConfig(
            directory=TEMPLATES_DIR, engine=JinjaTemplateEngine, engine_callback=_page_globals
        ),
        request_max_body_size=settings.security.max_body_bytes,
        on_startup=[_start_workers],
        on_shutdown=[_dispose],
        after_exception=[dress_error_page],
        debug=False,
        logging_config=None,  # configure_logging owns the log pipeline
    )
    # Outermost, around the router itself: an unknown address (which no route middleware sees) gets a
    # request id and an access-log line too.
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler)
    # The documentation pages are public; every other route must declare its permission.
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path.startswith(OPENAPI_PATH):
            for handler in route.route_handlers:
                handler.opt["public"] = True
    return app
