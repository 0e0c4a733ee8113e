"""The operations console's pages (incidents, the inbox, alerts, runs, events), for the application
factory to mount in one go."""

from __future__ import annotations

from litestar import Controller

from andon.frontend.operations.events import EventsPageController
from andon.frontend.operations.inbox import InboxPageController
from andon.frontend.operations.incidents import AlertsPageController, IncidentsPageController
from andon.frontend.operations.runs import RunsPageController

OPERATIONS_CONSOLE: list[type[Controller]] = [
    IncidentsPageController,
    InboxPageController,
    AlertsPageController,
    RunsPageController,
    EventsPageController,
]
