"""The SFTP file-drop adapter against a real SFTP server (asyncssh) on a socket: CSV and text files
written atomically by password and by key, once per idempotent repeat, host keys verified, failures
in the engine's kinds, and secrets that never leave."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from andon.connectors.outbound.errors import ConnectorError
from andon.connectors.outbound.runtime import OutboundCalls
from andon.connectors.outbound.sftp import MAX_FILE_BYTES
from andon.platform.engine.capabilities import FORBIDDEN, INVALID, NOT_FOUND, UNAVAILABLE
from andon.platform.engine.executor import ENGINE
from andon.platform.tenancy.context import TenantContext, TenantId
from tests.support.sftp_server import PASSWORD, USERNAME, SftpKeys, SftpServer, make_keys, sftp_server
from tests.support.workers import drain, running_worker
from tests.tenants.factories import World, auth

pytestmark = pytest.mark.anyio
PASSPHRASE = "key-passphrase-9931"


@pytest.fixture(scope="session")
def keys() -> SftpKeys:
    return make_keys()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "sftp" / "drop").mkdir(parents=True)
    return tmp_path / "sftp"


@pytest.fixture
def server(root: Path, keys: SftpKeys) -> Iterator[SftpServer]:
    with sftp_server(root, keys) as running:
        yield running


@pytest.fixture
async def calls(app: Litestar, sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OutboundCalls]:
    made = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=True)
    yield made
    await made.egress.close()


def _base(world: World) -> str:
    return f"/api/v1/customers/{world.a.customer.customer_id}/outbound-connections/"


def _tenant(world: World) -> TenantContext:
    return TenantContext(TenantId(world.a.customer.customer_id), world.a.partner_id, ENGINE)


def _config(port: int, keys: SftpKeys, **changed: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": port,
        "username": USERNAME,
        "directory": "/drop",
        "known_host_key": keys.host_public,
        **changed,
    }


async def _create(
    api: httpx.AsyncClient,
    world: World,
    key: str,
    config: dict[str, Any],
    secrets: dict[str, str],
    **fields: Any,
) -> dict[str, Any]:
    r = await api.post(
        _base(world),
        headers=auth(world.a.customer.key),
        json={"key": key, "name": key, "type": "sftp", "config": config, "secrets": secrets, **fields},
    )
    assert r.status_code == 201, r.text
    made: dict[str, Any] = r.json()
    return made


def _encrypted_user_key(keys: SftpKeys) -> str:
    return keys.user.export_private_key("pkcs8-pem", passphrase=PASSPHRASE).decode()


async def test_csv_and_files_are_written_atomically_by_password_and_by_key(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer, calls: OutboundCalls
) -> None:
    made = await _create(api, world, "drop", _config(server.port, keys), {"password": PASSWORD})
    assert made["secrets_set"] == ["password"] and made["secrets_missing"] == []
    assert made["capabilities"] == ["drop.put_csv", "drop.put_file"]
    by_key = await _create(
        api,
        world,
        "drop_key",
        _config(server.port, keys, auth="private_key"),
        {"private_key": _encrypted_user_key(keys), "passphrase": PASSPHRASE},
    )
    assert by_key["secrets_missing"] == []
    tenant = _tenant(world)

    rows: list[Any] = [
        {"asset": "Press 4", "note": 'said "stop", then left', "count": 3, "ok": True, "extra": "left out"},
        ["Line 3", "two\nlines", None, False],
        {"asset": "Ofen ü", "note": "", "count": 1.5, "ok": None},
        ["Cell 9", {"temp": 71}, [1, 2], "x;y"],
    ]
    answer = await calls.call(
        tenant,
        "drop",
        "put_csv",
        {"filename": "readings.csv", "columns": ["asset", "note", "count", "ok"], "rows": rows},
        idempotency_key="andon:r1:csv",
    )
    expected = (
        'asset,note,count,ok\r\nPress 4,"said ""stop"", then left",3,true\r\nLine 3,"two\nlines",,false\r\n'
        'Ofen ü,,1.5,\r\nCell 9,"{""temp"":71}","[1,2]",x;y\r\n'
    ).encode()
    assert (root / "drop" / "readings.csv").read_bytes() == expected
    assert answer["path"] == "/drop/readings.csv" and answer["bytes"] == len(expected)
    assert (answer["written"], answer["rows"]) == (True, 4)
    # Written under a .part name, then renamed over the real one in one step.
    assert server.log() == [
        ("write", "/drop/readings.csv.part"),
        ("posix_rename", "/drop/readings.csv.part", "/drop/readings.csv"),
    ]

    semicolons = await calls.call(
        tenant,
        "drop_key",
        "put_csv",
        {"filename": "plain.csv", "columns": ["a", "b"], "rows": [["1;2", "3"]], "delimiter": ";", "header": False},
        idempotency_key="andon:r1:csv2",
    )
    assert (root / "drop" / "plain.csv").read_bytes() == b'"1;2";3\r\n' and semicolons["written"] is True

    await calls.call(
        tenant,
        "drop_key",
        "put_file",
        {"filename": "order.json", "content": {"order": "PO-7", "lines": [1, 2]}},
        idempotency_key="andon:r1:json",
    )
    await calls.call(
        tenant,
        "drop",
        "put_file",
        {"filename": "note.txt", "content": "Grüße\n", "encoding": "iso-8859-1"},
        idempotency_key="andon:r1:text",
    )
    assert json.loads((root / "drop" / "order.json").read_bytes()) == {"order": "PO-7", "lines": [1, 2]}
    assert (root / "drop" / "note.txt").read_bytes() == "Grüße\n".encode("iso-8859-1")
    # A new content under the same name replaces the file whole.
    await calls.call(
        tenant, "drop", "put_file", {"filename": "note.txt", "content": "v2"}, idempotency_key="andon:r2:text"
    )
    assert (root / "drop" / "note.txt").read_bytes() == b"v2"
    assert sorted(p.name for p in (root / "drop").iterdir()) == ["note.txt", "order.json", "plain.csv", "readings.csv"]

    with pytest.raises(ConnectorError) as unencodable:
        await calls.call(
            tenant,
            "drop",
            "put_file",
            {"filename": "x.txt", "content": "€", "encoding": "ascii"},
            idempotency_key="k",
        )
    assert unencodable.value.kind == INVALID and "ascii" in str(unencodable.value)
    with pytest.raises(ConnectorError) as ragged:
        await calls.call(
            tenant, "drop", "put_csv", {"filename": "r.csv", "columns": ["a"], "rows": [[1, 2]]}, idempotency_key="k"
        )
    assert ragged.value.kind == INVALID and "rows[0]" in str(ragged.value)


async def test_a_repeat_with_the_same_content_does_not_write_again(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer, calls: OutboundCalls
) -> None:
    await _create(api, world, "drop", _config(server.port, keys), {"password": PASSWORD})
    inputs = {"filename": "shift.csv", "columns": ["n"], "rows": [[1], [2]]}
    first = await calls.call(_tenant(world), "drop", "put_csv", inputs, idempotency_key="andon:r9:s")
    before = (root / "drop" / "shift.csv").stat()
    again = await calls.call(_tenant(world), "drop", "put_csv", inputs, idempotency_key="andon:r9:s")
    assert (first["written"], again["written"]) == (True, False)
    assert again["sha256"] == first["sha256"] and again["bytes"] == first["bytes"]
    assert [what for what in server.log() if what[0] == "write"] == [("write", "/drop/shift.csv.part")]
    assert (root / "drop" / "shift.csv").stat().st_ino == before.st_ino


async def test_a_server_without_posix_rename_still_gets_whole_files(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, calls: OutboundCalls
) -> None:
    (root / "drop" / "status.txt").write_bytes(b"old")
    with sftp_server(root, keys, posix_rename=False) as plain:
        await _create(api, world, "drop", _config(plain.port, keys, directory="drop"), {"password": PASSWORD})
        answer = await calls.call(
            _tenant(world), "drop", "put_file", {"filename": "status.txt", "content": "new"}, idempotency_key="k1"
        )
        log = plain.log()
    assert answer == {
        "path": "drop/status.txt",
        "bytes": 3,
        "sha256": "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437",
        "written": True,
    }
    assert (root / "drop" / "status.txt").read_bytes() == b"new"
    assert sorted(p.name for p in (root / "drop").iterdir()) == ["status.txt"]
    assert log[-1] == ("rename", "drop/status.txt.part", "drop/status.txt")


async def test_a_file_name_that_is_not_plain_is_refused(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer, calls: OutboundCalls
) -> None:
    # 14 calls at once: over the default rate limit of 10 a second.
    await _create(api, world, "drop", _config(server.port, keys), {"password": PASSWORD}, rate_per_second=50)
    for filename in ("../escape.csv", "sub/x.csv", "x\\y.csv", "a\nb.csv", "..", "x\x7f.csv", " "):
        for capability, inputs in (
            ("put_file", {"filename": filename, "content": "x"}),
            ("put_csv", {"filename": filename, "columns": ["a"], "rows": []}),
        ):
            with pytest.raises(ConnectorError) as refused:
                await calls.call(_tenant(world), "drop", capability, inputs, idempotency_key="k")
            assert refused.value.kind == INVALID and "inputs.filename" in str(refused.value), filename
    assert server.log() == [] and list((root / "drop").iterdir()) == []
    assert not (root.parent / "escape.csv").exists()


async def test_a_file_over_the_size_limit_is_refused(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, server: SftpServer, calls: OutboundCalls
) -> None:
    await _create(api, world, "drop", _config(server.port, keys), {"password": PASSWORD})
    with pytest.raises(ConnectorError) as refused:
        await calls.call(
            _tenant(world),
            "drop",
            "put_file",
            {"filename": "big.txt", "content": "x" * (MAX_FILE_BYTES + 1)},
            idempotency_key="k",
        )
    assert refused.value.kind == INVALID and f"at most {MAX_FILE_BYTES}" in str(refused.value)
    assert server.log() == []


async def test_an_unknown_host_key_is_refused_and_the_check_shows_its_fingerprint(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer, calls: OutboundCalls
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key("openssh").decode()
    made = await _create(api, world, "drop", _config(server.port, keys, known_host_key=other), {"password": PASSWORD})
    fingerprint = keys.host.get_fingerprint("sha256")
    with pytest.raises(ConnectorError) as refused:
        await calls.call(_tenant(world), "drop", "put_file", {"filename": "a.txt", "content": "x"}, idempotency_key="k")
    assert refused.value.kind == INVALID and fingerprint in str(refused.value)
    assert server.log() == [] and list((root / "drop").iterdir()) == []

    checked = await api.post(f"{_base(world)}{made['id']}/check", headers=auth(world.a.customer.key))
    assert checked.status_code == 200, checked.text
    steps = checked.json()["steps"]
    assert checked.json()["ok"] is False
    assert [(s["what"], s["ok"]) for s in steps] == [("resolve and connect", True), ("host key", False)]
    assert fingerprint in steps[1]["detail"] and keys.host_public in steps[1]["detail"]


async def test_the_check_walks_every_step_and_finds_a_missing_directory(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer, calls: OutboundCalls
) -> None:
    # A known_hosts line (host first, as ssh-keyscan prints it) is accepted and kept as the key alone.
    good = await _create(
        api,
        world,
        "drop",
        _config(server.port, keys, known_host_key=f"[127.0.0.1]:{server.port} {keys.host_public}"),
        {"password": PASSWORD},
    )
    assert good["config"]["known_host_key"] == keys.host_public
    missing = await _create(
        api, world, "nowhere", _config(server.port, keys, directory="/nope"), {"password": PASSWORD}
    )
    key = auth(world.a.customer.key)

    checked = (await api.post(f"{_base(world)}{good['id']}/check", headers=key)).json()
    assert checked["ok"] is True
    assert [s["what"] for s in checked["steps"]] == [
        "resolve and connect",
        "host key",
        "log in",
        "remote directory",
        "write and remove a probe file",
    ]
    assert keys.host.get_fingerprint("sha256") in checked["steps"][1]["detail"]
    assert list((root / "drop").iterdir()) == []  # the probe file was removed
    assert [w[0] for w in server.log()] == ["write"]

    nowhere = (await api.post(f"{_base(world)}{missing['id']}/check", headers=key)).json()
    assert nowhere["ok"] is False
    assert [(s["what"], s["ok"]) for s in nowhere["steps"]][-2:] == [("log in", True), ("remote directory", False)]
    with pytest.raises(ConnectorError) as not_there:
        await calls.call(
            _tenant(world), "nowhere", "put_file", {"filename": "a.txt", "content": "x"}, idempotency_key="k"
        )
    assert not_there.value.kind == NOT_FOUND and "/nope/a.txt" in str(not_there.value)

    bad_key = await api.post(
        _base(world),
        headers=key,
        json={
            "key": "bad",
            "name": "bad",
            "type": "sftp",
            "config": _config(server.port, keys, known_host_key="x" * 30),
        },
    )
    assert bad_key.status_code == 422 and "known_host_key" in bad_key.text


async def test_a_wrong_password_is_forbidden_and_secrets_never_leave(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer, calls: OutboundCalls
) -> None:
    wrong = "not-the-Pa55word-0017"
    made = await _create(api, world, "drop", _config(server.port, keys), {"password": wrong})
    private = _encrypted_user_key(keys)
    with_key = await _create(
        api,
        world,
        "drop_key",
        _config(server.port, keys, auth="private_key"),
        {"private_key": private, "passphrase": PASSPHRASE},
    )
    with pytest.raises(ConnectorError) as refused:
        await calls.call(_tenant(world), "drop", "put_file", {"filename": "a.txt", "content": "x"}, idempotency_key="k")
    assert refused.value.kind == FORBIDDEN and wrong not in str(refused.value)
    assert list((root / "drop").iterdir()) == []

    key = auth(world.a.customer.key)
    checked = (await api.post(f"{_base(world)}{made['id']}/check", headers=key)).json()
    assert [(s["what"], s["ok"]) for s in checked["steps"]] == [
        ("resolve and connect", True),
        ("host key", True),
        ("log in", False),
    ]
    # The key connection works; then nothing secret is in any answer or record.
    await calls.call(_tenant(world), "drop_key", "put_file", {"filename": "b.txt", "content": "y"}, idempotency_key="k")
    answers = [
        (await api.get(_base(world), headers=key)).text,
        (await api.get(f"{_base(world)}{made['id']}", headers=key)).text,
        (await api.get(f"{_base(world)}{made['id']}/calls", headers=key)).text,
        (await api.get(f"{_base(world)}{with_key['id']}/calls", headers=key)).text,
        json.dumps(checked),
    ]
    calls_made = json.loads(answers[2])
    assert [(c["capability"], c["outcome"]) for c in calls_made] == [("put_file", FORBIDDEN)]
    for text in answers:
        for secret in (wrong, PASSPHRASE, private.splitlines()[1]):
            assert secret not in text


async def test_a_server_that_is_down_is_unavailable(
    api: httpx.AsyncClient, world: World, keys: SftpKeys, calls: OutboundCalls
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    made = await _create(api, world, "drop", _config(port, keys), {"password": PASSWORD})
    with pytest.raises(ConnectorError) as down:
        await calls.call(_tenant(world), "drop", "put_file", {"filename": "a.txt", "content": "x"}, idempotency_key="k")
    assert down.value.kind == UNAVAILABLE and f"127.0.0.1:{port}" in str(down.value)
    checked = (await api.post(f"{_base(world)}{made['id']}/check", headers=auth(world.a.customer.key))).json()
    assert [(s["what"], s["ok"]) for s in checked["steps"]] == [("resolve and connect", False)]

    # A socket that takes the connection but never speaks SSH: the connection's timeout ends the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        await _create(
            api, world, "mute", _config(silent.getsockname()[1], keys), {"password": PASSWORD}, timeout_seconds=1
        )
        with pytest.raises(ConnectorError) as mute:
            await calls.call(
                _tenant(world), "mute", "put_file", {"filename": "a.txt", "content": "x"}, idempotency_key="k"
            )
    assert mute.value.kind == UNAVAILABLE and "within 1 s" in str(mute.value)


async def test_a_private_address_is_refused_when_private_networks_are_not_allowed(
    api: httpx.AsyncClient,
    world: World,
    keys: SftpKeys,
    server: SftpServer,
    app: Litestar,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _create(api, world, "drop", _config(server.port, keys, host="localhost"), {"password": PASSWORD})
    guarded = OutboundCalls(sessionmaker, app.state.secretbox, allow_private=False)
    with pytest.raises(ConnectorError) as refused:
        await guarded.call(
            _tenant(world), "drop", "put_file", {"filename": "a.txt", "content": "x"}, idempotency_key="k"
        )
    assert refused.value.kind == INVALID and "not public" in str(refused.value)
    assert server.log() == []


async def test_a_workflow_step_drops_a_file_once_with_its_idempotency_key(
    app: Litestar, api: httpx.AsyncClient, world: World, keys: SftpKeys, root: Path, server: SftpServer
) -> None:
    c = world.a.customer
    base = f"/api/v1/customers/{c.customer_id}"
    await _create(api, world, "supplier", _config(server.port, keys), {"password": PASSWORD})
    steps: list[dict[str, Any]] = [
        {
            "key": "drop_order",
            "kind": "action",
            "capability": "supplier.put_csv",
            "inputs": {
                "filename": "order-{{ event.order }}.csv",
                "columns": ["order", "asset"],
                "rows": [["{{ event.order }}", "{{ event.subject }}"]],
            },
            "next": "bad_name",
        },
        {
            "key": "bad_name",
            "kind": "action",
            "capability": "supplier.put_file",
            "inputs": {"filename": "../x.txt", "content": "no"},
        },
    ]
    r = await api.post(
        f"{base}/workflows/", headers=auth(c.key), json={"key": "po", "name": "PO", "definition": {"steps": steps}}
    )
    assert r.status_code == 201, r.text
    started = await api.post(
        f"{base}/workflows/{r.json()['id']}/runs",
        headers=auth(c.key),
        json={"event": {"subject": "Press 4", "order": "PO-77"}},
    )
    assert started.status_code == 201, started.text
    with running_worker(app):
        drain(app)

    detail = (await api.get(f"{base}/runs/{started.json()['id']}", headers=auth(c.key))).json()
    by_key = {s["step_key"]: s for s in detail["steps"]}
    assert by_key["drop_order"]["status"] == "succeeded", by_key
    assert by_key["drop_order"]["output"]["path"] == "/drop/order-PO-77.csv"
    assert (root / "drop" / "order-PO-77.csv").read_bytes() == b"order,asset\r\nPO-77,Press 4\r\n"
    refused = by_key["bad_name"]
    assert refused["status"] == "waiting" and "inputs.filename" in refused["error"], refused
    assert sorted(p.name for p in (root / "drop").iterdir()) == ["order-PO-77.csv"]
