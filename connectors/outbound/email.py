"""E-mail through the customer's own SMTP server (a real SMTP client: aiosmtplib).

The server's name is checked like any URL (public addresses only, unless allowed) and the socket is
opened to the address that was checked; the TLS name stays the server's. The ``Message-ID`` is made
from the step's idempotency key, so a mail sent twice after a crash carries the same id and mail
clients show it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated, Literal

import aiosmtplib
import msgspec

from andon.connectors.egress import EgressError, addresses_for
from andon.connectors.outbound.errors import ConnectorError, from_egress
from andon.connectors.outbound.types import Capability, ConnectorType, SecretField, Using
from andon.platform.engine.capabilities import FAILED, FORBIDDEN, INVALID, UNAVAILABLE

Address = Annotated[str, msgspec.Meta(pattern=r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$", max_length=254)]
Host = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9.\-:\[\]]+$", max_length=253)]


class SmtpConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: Host
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    # starttls (587), tls (465, TLS from the first byte) or none (a relay inside a trusted network).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    sender: Address
    sender_name: Annotated[str, msgspec.Meta(max_length=200)] = ""


class EmailNotify(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    to: Annotated[list[Address], msgspec.Meta(min_length=1, max_length=50)]
    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=50_000)]
    cc: Annotated[list[Address], msgspec.Meta(max_length=50)] = []


def message_for(config: SmtpConfig, inputs: EmailNotify, idempotency_key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{config.sender_name} <{config.sender}>" if config.sender_name else config.sender
    message["To"] = ", ".join(inputs.to)
    if inputs.cc:
        message["Cc"] = ", ".join(inputs.cc)
    message["Subject"] = inputs.subject.replace("\r", " ").replace("\n", " ")
    message["Date"] = formatdate(localtime=False)
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@{config.sender.split('@', 1)[1]}>"
    message.set_content(inputs.text)
    return message


async def _connected(using: Using, config: SmtpConfig) -> socket.socket:
    try:
        addresses = await addresses_for(
            config.host, config.port, allow_private=using.limits.allow_private, resolve=using.egress.resolve
        )
    except EgressError as exc:
        raise from_egress(exc) from None
    loop = asyncio.get_running_loop()
    last: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(using.limits.timeout_seconds):
                await loop.sock_connect(sock, (address.split("%", 1)[0], config.port))
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            last = exc if isinstance(exc, OSError) else OSError(f"no answer in {using.limits.timeout_seconds:g} s")
    raise ConnectorError(f"cannot connect to {config.host}:{config.port}: {last}", UNAVAILABLE)


def _client(using: Using, config: SmtpConfig, sock: socket.socket) -> aiosmtplib.SMTP:
    # Over the socket already connected to the checked address; the TLS name stays the server's.
    return aiosmtplib.SMTP(
        hostname=config.host,
        sock=sock,
        use_tls=config.security == "tls",
        start_tls=config.security == "starttls",
        timeout=using.limits.timeout_seconds,
        tls_context=ssl.create_default_context(),
    )


async def _send(using: Using, inputs: EmailNotify) -> dict[str, object]:
    config: SmtpConfig = using.config
    message = message_for(config, inputs, using.idempotency_key)
    sock = await _connected(using, config)
    client = _client(using, config, sock)
    try:
        async with client:
            if config.username:
                await client.login(config.username, using.secrets.get("password", ""))
            refused, _ = await client.send_message(message)
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise ConnectorError(f"{config.host} refused the login ({exc.code})", FORBIDDEN) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise ConnectorError(f"{config.host} refused every recipient: {exc.recipients}", INVALID) from None
    except aiosmtplib.SMTPResponseException as exc:
        kind = FAILED if 400 <= exc.code < 500 else INVALID
        raise ConnectorError(f"{config.host} answered {exc.code}: {exc.message}", kind) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise ConnectorError(
            f"sending through {config.host} failed: {type(exc).__name__}: {exc}", UNAVAILABLE
        ) from None
    finally:
        sock.close()
    return {"message_id": message["Message-ID"], "refused": sorted(refused)}


async def _check(using: Using) -> list[tuple[str, bool, str]]:
    config: SmtpConfig = using.config
    try:
        sock = await _connected(using, config)
    except ConnectorError as exc:
        return [("connect", False, str(exc))]
    steps = [("connect", True, f"{config.host}:{config.port} answered")]
    client = _client(using, config, sock)
    try:
        async with client:
            steps.append(("greeting and TLS", True, f"security {config.security}"))
            if config.username:
                await client.login(config.username, using.secrets.get("password", ""))
                steps.append(("log in", True, f"as {config.username}"))
    except aiosmtplib.SMTPAuthenticationError as exc:
        steps.append(("log in", False, f"refused ({exc.code})"))
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        steps.append(("greeting and TLS", False, f"{type(exc).__name__}: {exc}"))
    finally:
        sock.close()
    return steps


EMAIL = ConnectorType(
    key="email",
    title="E-mail (SMTP)",
    description="Sends mail through the customer's SMTP server (STARTTLS, TLS or a plain internal relay).",
    config=SmtpConfig,
    secrets=(SecretField("password", "SMTP password", lambda config: bool(getattr(config, "username", None))),),
    capabilities={"notify": Capability("notify", "Send an e-mail", EmailNotify, _send)},
    check=_check,
)
