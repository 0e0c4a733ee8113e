"""The application factory: the one place that assembles the kernel and the domain routes."""

from __future__ import annotations

import asyncio
import uuid
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
from sqlalchemy.ext.asyncio import AsyncSession

import andon
from andon.billing.invoices.controllers import INVOICE_CONTROLLERS
from andon.billing.plans.controllers import PLAN_CONTROLLERS
from andon.billing.stripe.webhooks import StripeWebhookController
from andon.connectors.ingress.cloudevents import CloudEventsController
from andon.connectors.ingress.mqtt import MqttIngress
from andon.connectors.ingress.pollers import PollScheduler
from andon.connectors.onprem.controllers import ONPREM_HANDLERS
from andon.connectors.onprem.server import RelayEndpoint
from andon.connectors.outbound.controllers import OUTBOUND_CONTROLLERS
from andon.connectors.outbound.runtime import OutboundCalls, engine_connections
from andon.connectors.outbound.service import offered_capabilities
from andon.connectors.sources.controllers import HOOKS_PATH, SOURCE_CONTROLLERS
from andon.connectors.sources.intake import ConnectionIntake
from andon.frontend.auth.controllers import AccountPageController, SignInController, TokenPagesController
from andon.frontend.customer.controllers import CUSTOMER_CONSOLE
from andon.frontend.finance.customer import FINANCE_CUSTOMER_PAGES
from andon.frontend.finance.partner import FINANCE_PARTNER_PAGES
from andon.frontend.home import HomeController
from andon.frontend.nav import nav_for
from andon.frontend.operations.controllers import OPERATIONS_CONSOLE
from andon.frontend.operator.health import OperatorHealthController
from andon.frontend.operator.partners import OperatorPartnersController
from andon.frontend.pages import PageContextMiddleware, dress_error_page
from andon.frontend.partner.controllers import PartnerBrandingPageController, PartnerConsoleController
from andon.frontend.partner.rollouts import RolloutPageController
from andon.frontend.partner.template_library import TemplateLibraryPageController
from andon.platform.alerts.controllers import AlertController, IncidentController
from andon.platform.audit.controllers import AuditController
from andon.platform.auth.controllers import ApiKeyController, RoleController
from andon.platform.auth.guards import require_permission
from andon.platform.auth.middleware import AuthenticationMiddleware
from andon.platform.auth.models import ApiKey
from andon.platform.auth.verified import VerifiedKeys, forget_on_change
from andon.platform.config.settings import Settings
from andon.platform.crypto.secretbox import SecretBox
from andon.platform.db.engine import create_engine, create_sessionmaker
from andon.platform.db.errors import is_data_exception
from andon.platform.devmode.simulator import PlantTraffic
from andon.platform.engine.capabilities import Capabilities
from andon.platform.engine.controllers import ENGINE_CONTROLLERS
from andon.platform.engine.dispatch import broker_sender
from andon.platform.engine.page_delivery import page_sender, use_connections
from andon.platform.engine.run_timers import RunTimers
from andon.platform.engine.scheduler import Scheduler
from andon.platform.events.committer import GroupCommitter
from andon.platform.events.relay import Relay
from andon.platform.http.dependencies import DEPENDENCIES
from andon.platform.http.health import HealthController
from andon.platform.http.problems import EXCEPTION_HANDLERS, problem_response
from andon.platform.http.rate_limit import build_rate_limiter
from andon.platform.http.request_context import RequestContextMiddleware
from andon.platform.identity.controllers import MeController
from andon.platform.identity.oidc import OidcMetadataCache
from andon.platform.observability.controllers import METRICS_PATH, MetricsController
from andon.platform.observability.logging import configure_logging
from andon.platform.observability.metrics import IngressMetricsMiddleware
from andon.platform.tenancy.context import TenantContext
from andon.platform.tenancy.principal import Principal
from andon.platform.workers.actors import declare_actors, start_worker
from andon.platform.workers.broker import build_broker
from andon.platform.workers.housekeeping import housekeeping_jobs
from andon.platform.workers.periodic import Periodic
from andon.templates_catalog.deployments.controllers import DEPLOYMENT_CONTROLLERS
from andon.templates_catalog.deployments.defaults_controllers import DEFAULTS_CONTROLLERS
from andon.templates_catalog.library.controllers import TEMPLATE_CONTROLLERS
from andon.templates_catalog.rollouts.controllers import ROLLOUT_CONTROLLERS
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
from andon.tenants.orgs.models import Customer, Partner
from andon.tenants.orgs.service import CustomerService, org_is_active
from andon.tenants.plant.controllers import PLANT_CONTROLLERS
from andon.tenants.plant.on_duty import duty_people
from andon.tenants.plant.references import resolve_plant_refs

OPENAPI_PATH = "/api/docs"
TEMPLATES_DIR = Path(andon.__file__).resolve().parent / "frontend" / "templates"
STATIC_DIR = Path(andon.__file__).resolve().parent / "frontend" / "static"


def route_handlers() -> list[ControllerRouterHandler]:
    return [
        HealthController,
        MetricsController,
        HomeController,
        SignInController,
        BrandingController,
        PublicBrandAssetController,
        CustomerMarkController,
        CustomerMarkImageController,
        AccountPageController,
        PartnerConsoleController,
        PartnerBrandingPageController,
        TemplateLibraryPageController,
        RolloutPageController,
        OperatorPartnersController,
        OperatorHealthController,
        *CUSTOMER_CONSOLE,
        *OPERATIONS_CONSOLE,
        *FINANCE_CUSTOMER_PAGES,
        *FINANCE_PARTNER_PAGES,
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
        Router(
            path="/",
            route_handlers=[AlertController, IncidentController, *ENGINE_CONTROLLERS],
            dependencies=TENANT_DEPENDENCY,
        ),
        CloudEventsController,
        *SOURCE_CONTROLLERS,
        *OUTBOUND_CONTROLLERS,
        *TEMPLATE_CONTROLLERS,
        *DEPLOYMENT_CONTROLLERS,
        *DEFAULTS_CONTROLLERS,
        *ROLLOUT_CONTROLLERS,
        *ONPREM_HANDLERS,
        CustomerAuditController,
        *PLAN_CONTROLLERS,
        *INVOICE_CONTROLLERS,
        StripeWebhookController,
    ]


def _database_refusal(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    # The caller's input, so 422; anything else is ours, 500.
    if is_data_exception(exc):
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


async def _open_tenant(session: AsyncSession, principal: Principal, customer_id: uuid.UUID) -> TenantContext:
    return await CustomerService(session, principal).open_tenant(customer_id)


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
            # Per-tenant event limits on ingress (Redis buckets when Redis is configured).
            "rate_limiter": build_rate_limiter(settings),
        }
    )

    state.capabilities = Capabilities()
    # The on-premise relay agents that connect out from the plants (their events, and calls on the
    # plants' systems).
    state.onprem = RelayEndpoint(
        state.sessionmaker,
        state.secretbox,
        limit=state.rate_limiter.check_events,
        # The outbox relay is made further down; it is woken once it exists.
        on_events=lambda: state.relay.wake(),
        redis=settings.redis,
    )
    # Calls to the customers' own systems, through the egress guard.
    state.outbound = OutboundCalls(
        state.sessionmaker,
        state.secretbox,
        allow_private=settings.private_networks_allowed(settings.connectors.allow_private_networks),
    )
    declare_actors(
        state.broker, settings, state.capabilities, engine_connections(settings, state.secretbox, state.onprem.calls)
    )
    # Escalation pages go through the customers' own notify connections (checked when a workflow is saved).
    use_connections(offered_capabilities)
    state.relay = Relay(state.sessionmaker, state.broker)
    # Ingress: verified API keys for a few seconds (forgotten at once when a key or an organisation
    # changes in this process), and events of concurrent requests committed together.
    state.verified_keys = VerifiedKeys(settings.security.api_key_cache_seconds)
    forget_on_change(state.verified_keys, ApiKey, Customer, Partner)
    state.event_committer = GroupCommitter(state.sessionmaker, _open_tenant, resolve_plant_refs)
    state.worker = None
    state.scheduler = Scheduler(
        state.sessionmaker,
        broker_sender(state.broker),
        tick=settings.engine.scheduler_tick_seconds,
        stalled_after=settings.engine.stalled_after_seconds,
        # Escalation ladders page whoever the tenants domain says is on shift.
        run_timers=RunTimers(duty_people, page_sender(state.broker)),
    )

    state.housekeeping = housekeeping_jobs(state.sessionmaker, settings)

    async def _demo_traffic() -> None:
        if await traffic.tick():
            state.relay.wake()

    traffic = PlantTraffic(state.sessionmaker)
    state.demo_traffic = (
        Periodic("demo-traffic", settings.demo_traffic_seconds, _demo_traffic)
        if settings.demo_traffic_seconds
        else None
    )

    # Subscriptions for the mqtt connections of every customer, when a broker is configured.
    state.mqtt = (
        MqttIngress(
            ConnectionIntake(state.sessionmaker),
            settings.mqtt,
            on_events=state.relay.wake,
            limit=state.rate_limiter.check_events,
        )
        if settings.mqtt.url
        else None
    )
    # Fetches from the REST endpoints and drop folders of every customer, each on its own schedule.
    state.polls = PollScheduler(
        state.sessionmaker,
        state.secretbox,
        settings,
        on_events=state.relay.wake,
        charge=state.rate_limiter.check_events,
    )

    async def _start_workers(app: Litestar) -> None:
        if settings.workers.in_process:
            app.state.relay.start()
            app.state.worker = start_worker(app.state.broker, settings.workers.threads)
            for job in app.state.housekeeping:
                job.start()
            app.state.scheduler.start()
            if app.state.demo_traffic is not None:
                app.state.demo_traffic.start()
            if app.state.mqtt is not None:
                app.state.mqtt.start()
            if settings.polling.enabled:
                app.state.polls.start()

    async def _dispose(app: Litestar) -> None:
        if app.state.mqtt is not None:
            await app.state.mqtt.stop()
        await app.state.polls.stop()
        await app.state.relay.stop()
        for job in app.state.housekeeping:
            await job.stop()
        await app.state.scheduler.stop()
        if app.state.demo_traffic is not None:
            await app.state.demo_traffic.stop()
        if app.state.worker is not None:
            # Stopping the worker disposes the actors' engine inside the worker's own loop.
            await asyncio.to_thread(app.state.worker.stop)
        await app.state.rate_limiter.close()
        await app.state.outbound.egress.close()
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
            # /metrics is admitted by its own token, which is no API key.
            DefineMiddleware(AuthenticationMiddleware, exclude=["^/health/", f"^{OPENAPI_PATH}", f"^{METRICS_PATH}$"]),
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
    # Every ingress request is counted, including those refused before a route runs (413, 404).
    app.asgi_handler = RequestContextMiddleware(
        IngressMetricsMiddleware(app.asgi_handler, {"/api/v1/events": "http", f"{HOOKS_PATH}/[^/]+": "webhook"})
    )
    # The documentation pages are public; every other route must declare its permission.
    for route in app.routes:
        if isinstance(route, HTTPRoute) and route.path.startswith(OPENAPI_PATH):
            for handler in route.route_handlers:
                handler.opt["public"] = True
    return app
