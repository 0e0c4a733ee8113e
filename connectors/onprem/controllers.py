"""The WebSocket an ``andon relay`` agent holds open from inside the plant."""

from __future__ import annotations

from litestar import WebSocket, websocket

from andon.connectors.onprem.server import PATH, RelayEndpoint


# Public to the guard: the agent proves itself by its relay token, which the endpoint checks (an
# API key would not do: the token names one relay connection and may only send its events).
@websocket(PATH, opt={"public": True})
async def relay_connect(socket: WebSocket) -> None:  # type: ignore[type-arg]
    endpoint: RelayEndpoint = socket.app.state.onprem
    await endpoint.serve(socket)


ONPREM_HANDLERS = [relay_connect]
