"""GraphQL over HTTP: a query or mutation with variables, on the REST adapter's authentication.

A GraphQL server answers 200 even when the operation failed, with ``errors`` in the body; those
become a failed call (not a success with an error inside), and a body with neither ``data`` nor
``errors`` is refused as malformed.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from andon.connectors.outbound.errors import ConnectorError, from_status
from andon.connectors.outbound.rest import REST, RestConfig, RestRequest, send
from andon.connectors.outbound.types import Capability, ConnectorType, Using
from andon.platform.engine.capabilities import FAILED, INVALID


class GraphqlConfig(RestConfig, forbid_unknown_fields=True, kw_only=True):
    # Joined to base_url, where the server takes operations.
    endpoint: Annotated[str, msgspec.Meta(max_length=500)] = "/graphql"


class GraphqlQuery(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    query: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    variables: dict[str, Any] = {}
    operation_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None


async def _query(using: Using, inputs: GraphqlQuery) -> Any:
    config: GraphqlConfig = using.config
    body: dict[str, Any] = {"query": inputs.query, "variables": inputs.variables}
    if inputs.operation_name:
        body["operationName"] = inputs.operation_name
    response = await send(using, RestRequest(method="POST", path=config.endpoint, json=body))
    failure = from_status(using.name, response)
    if failure is not None:
        raise failure
    try:
        document = response.json()
    except msgspec.DecodeError:
        raise ConnectorError(
            f"{using.name} answered something that is not JSON: {response.snippet()}", INVALID
        ) from None
    if not isinstance(document, dict) or ("data" not in document and "errors" not in document):
        raise ConnectorError(f"{using.name} answered JSON that is not a GraphQL result: {response.snippet()}", INVALID)
    errors = document.get("errors") or []
    if errors:
        messages = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors[:3])
        # Partial data with errors is still a failed call: the workflow decides by retry or fallback.
        raise ConnectorError(f"{using.name} refused the operation: {messages}"[:500], FAILED)
    return {"data": document.get("data")}


GRAPHQL = ConnectorType(
    key="graphql",
    title="GraphQL API",
    description="Queries and mutations against a GraphQL endpoint, with the REST adapter's authentication.",
    config=GraphqlConfig,
    secrets=REST.secrets,
    capabilities={"query": Capability("query", "Run a query or mutation", GraphqlQuery, _query)},
    check=REST.check,
)
