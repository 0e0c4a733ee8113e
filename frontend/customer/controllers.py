"""The customer-admin console's pages, for the application factory to mount in one go."""

from __future__ import annotations

from litestar import Controller

from andon.frontend.customer.api_keys import CustomerApiKeysPageController
from andon.frontend.customer.audit import CustomerAuditPageController
from andon.frontend.customer.connections import CustomerConnectionsPageController
from andon.frontend.customer.outbound import CustomerOutboundPageController
from andon.frontend.customer.plant import CustomerPlantPageController
from andon.frontend.customer.sign_in import CustomerSignInPageController
from andon.frontend.customer.users import CustomerUsersPageController
from andon.frontend.customer.workflow_templates import (
    CustomerDeploymentsPageController,
    CustomerTemplatesPageController,
    DelegatedDeploymentsPageController,
    DelegatedTemplatesPageController,
)

CUSTOMER_CONSOLE: list[type[Controller]] = [
    CustomerPlantPageController,
    CustomerUsersPageController,
    CustomerSignInPageController,
    CustomerApiKeysPageController,
    CustomerConnectionsPageController,
    CustomerOutboundPageController,
    CustomerTemplatesPageController,
    CustomerDeploymentsPageController,
    CustomerAuditPageController,
    # The same workflow pages for the partner's staff acting inside the customer (delegated).
    DelegatedTemplatesPageController,
    DelegatedDeploymentsPageController,
]
