"""The operations console's pages (events, alerts, incidents), for the application factory to mount in
one go."""

from __future__ import annotations

from litestar import Controller

from andon.frontend.operations.events import EventsPageController
from andon.frontend.operations.incidents import AlertsPageController, IncidentsPageController

OPERATIONS_CONSOLE: list[type[Controller]] = [
    IncidentsPageController,
    AlertsPageController,
    EventsPageController,
]
