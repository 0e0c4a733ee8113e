"""Imports every model module so ``Base.metadata`` is complete.

Like the app factory, this is an entry point: migrations, the test fixtures and the CLI use it, so
the kernel's own modules never need to import a domain folder.
"""

from __future__ import annotations

from sqlalchemy import MetaData


def load_all_models() -> MetaData:
    import andon.billing.invoices.models
    import andon.billing.plans.models
    import andon.billing.stripe.models
    import andon.billing.usage.models
    import andon.connectors.outbound.models
    import andon.connectors.sources.models
    import andon.platform.alerts.models
    import andon.platform.audit.models
    import andon.platform.auth.models
    import andon.platform.engine.models
    import andon.platform.events.models
    import andon.platform.identity.models
    import andon.templates_catalog.deployments.defaults_models
    import andon.templates_catalog.deployments.models
    import andon.templates_catalog.library.models
    import andon.templates_catalog.rollouts.models
    import andon.tenants.branding.models
    import andon.tenants.orgs.models
    import andon.tenants.plant.models  # noqa: F401
    from andon.platform.db.base import Base

    return Base.metadata
