"""The kinds of source connection and the settings each needs (the ``config`` of a connection).

- ``webhook``: the vendor pushes signed requests to ``/hooks/<id>``; it needs no config.
- ``mqtt``: Andon subscribes to a topic filter on the plant's broker (edge gateways publish per site).
- ``rest_poll``: Andon fetches a vendor's REST endpoint on a schedule, resuming from a stored cursor.
- ``drop_folder``: Andon picks up CSV / JSON files a system drops in a folder (an SFTP landing area).
- ``relay``: an ``andon relay`` agent inside the plant connects out to Andon and forwards what local
  systems post to it (``connectors/onprem/``); its secret is the agent's token.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jmespath
import msgspec
from jmespath.exceptions import JMESPathError

from andon.platform.http.errors import ValidationFailedError

Kind = Literal["webhook", "mqtt", "rest_poll", "drop_folder", "relay"]
KINDS: tuple[str, ...] = ("webhook", "mqtt", "rest_poll", "drop_folder", "relay")
# Kinds Andon fetches on a schedule (the others push, or are pushed to by a broker).
POLLED = frozenset({"rest_poll", "drop_folder"})

Interval = Annotated[int, msgspec.Meta(ge=5, le=24 * 3600)]
# Headers the HTTP transport owns: a poller's credential header may not be one of them.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class WebhookConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class RelayConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class MqttConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # An MQTT topic filter, e.g. "plants/+/alarms/#"; "+" and "#" as the MQTT spec allows.
    topic: Text
    # plain: the message is JSON (a CloudEvent, or a vendor payload for the mapping);
    # sparkplug: a Sparkplug-B-like JSON body whose metrics become the event data.
    payload: Literal["plain", "sparkplug"] = "plain"
    qos: Literal[0, 1] = 1
    # Which topic level (0-based) names the site, e.g. 1 in "plants/<site>/alarms"; None: the payload says.
    site_level: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None

    def __post_init__(self) -> None:
        # The filter is subscribed under the customer's own namespace (connectors/ingress/mqtt.py), so
        # it cannot reach another customer's topics; here it need only be a well-formed filter.
        levels = self.topic.split("/")
        misplaced = [level for level in levels if level not in ("+", "#") and ("+" in level or "#" in level)]
        if misplaced or "#" in levels[:-1] or self.topic.startswith("$") or "\x00" in self.topic:
            raise ValueError(
                "`topic` is not an MQTT topic filter: levels are separated by '/', '+' stands for one whole "
                "level and '#' for all the rest (as the last level); it may not start with '$'"
            )
        if self.site_level is not None and levels[-1] != "#" and self.site_level >= len(levels):
            raise ValueError(f"`site_level` {self.site_level} is past the topic's last level ({len(levels) - 1})")


class RestPollConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: Text
    interval_seconds: Interval = 60
    # The query parameter that carries the cursor (e.g. "since", "after"); the first fetch sends none.
    cursor_param: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "cursor"
    # JMESPath into the response: the list of records, and the cursor to resume from.
    items: Text = "items"
    next_cursor: Text = "next_cursor"
    # The header that carries the connection's secret (the vendor's API key); None: no credential.
    auth_header: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,99}$")] | None = None
    auth_prefix: Annotated[str, msgspec.Meta(max_length=50)] = ""

    def __post_init__(self) -> None:
        # Refusals name their field in backticks: parse_config reports it as config.<field>.
        try:
            parts = urlsplit(self.url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
        except ValueError:  # a port that is not a number
            valid = False
        if not valid or any(c.isspace() for c in self.url):
            raise ValueError("`url` must be an http:// or https:// address with a host")
        if self.auth_header is not None and self.auth_header.lower() in RESERVED_HEADERS:
            raise ValueError(f"`auth_header` cannot be {self.auth_header}: the transport sets it")
        for name in ("items", "next_cursor"):
            try:
                jmespath.compile(getattr(self, name))
            except JMESPathError as exc:
                raise ValueError(f"`{name}` is not a JMESPath expression: {str(exc).splitlines()[0]}") from None


class DropFolderConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    path: Text
    pattern: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "*.csv"
    interval_seconds: Interval = 30
    format: Literal["csv", "json", "jsonl"] = "csv"

    def __post_init__(self) -> None:
        # Where the folder may be depends on the customer (its own drop area), which the poller
        # checks; what can never be right is refused here.
        if "\x00" in self.path or ".." in self.path.replace("\\", "/").split("/"):
            raise ValueError("`path` must stay inside the customer's drop area: no '..' segments")
        if any(c in self.pattern for c in "/\\\x00") or self.pattern in (".", ".."):
            raise ValueError("`pattern` matches file names in the folder (e.g. '*.csv'), not paths")


CONFIGS: dict[str, type[msgspec.Struct]] = {
    "webhook": WebhookConfig,
    "mqtt": MqttConfig,
    "rest_poll": RestPollConfig,
    "drop_folder": DropFolderConfig,
    "relay": RelayConfig,
}


def parse_config(kind: str, config: dict[str, Any] | None) -> msgspec.Struct:
    """The kind's settings, checked; refusals name ``config.<field>``."""
    try:
        return msgspec.convert(config or {}, CONFIGS[kind], strict=False)
    except msgspec.ValidationError as exc:
        message, _, path = str(exc).partition(" - at `$")
        field = "config" + path.rstrip("`")
        if field == "config":
            found = message.split("`")
            field = f"config.{found[1]}" if len(found) > 2 else "config"
        raise ValidationFailedError(
            f"{field}: {message}", extra={"errors": [{"field": field, "message": message}]}
        ) from None


def normalised_config(kind: str, config: dict[str, Any] | None) -> dict[str, Any]:
    """What is stored: the checked settings with their defaults filled in."""
    return msgspec.to_builtins(parse_config(kind, config))  # type: ignore[no-any-return]
