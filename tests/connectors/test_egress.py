"""The egress guard: customer URLs never reach Andon's own network, however their names resolve."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from andon.connectors.egress import Egress, EgressError, EgressLimits
from tests.support.vendor_fake import VendorFake, vendor_fake

pytestmark = pytest.mark.anyio
GUARDED = EgressLimits(timeout_seconds=2, allow_private=False)


@pytest.fixture
def vendor() -> Iterator[VendorFake]:
    with vendor_fake() as fake:
        yield fake


class _Resolver:
    """A DNS that gives each answer in turn (the last one from then on), counting the questions."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/",
        "http://10.1.2.3/",
        "http://172.16.5.4/",
        "http://192.168.0.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://[fd00::1]/",
        "http://0.0.0.0:{port}/",
    ],
)
async def test_private_loopback_and_link_local_addresses_are_refused(vendor: VendorFake, url: str) -> None:
    port = vendor.url.rsplit(":", 1)[1]
    egress = Egress()
    try:
        with pytest.raises(EgressError) as refused:
            await egress.send("GET", url.format(port=port), GUARDED)
    finally:
        await egress.close()
    assert refused.value.failure == "refused" and "an address that is not public" in str(refused.value)
    assert vendor.requests == []


async def test_names_are_judged_by_every_address_they_resolve_to(vendor: VendorFake) -> None:
    for answer in (["127.0.0.1"], ["93.184.216.34", "127.0.0.1"], ["10.0.0.7"]):
        egress = Egress(resolve=_Resolver(answer))
        with pytest.raises(EgressError) as refused:
            await egress.send("GET", "http://vendor.example/api", GUARDED)
        assert refused.value.failure == "refused", answer
    assert vendor.requests == []


async def test_a_rebinding_name_cannot_swap_in_a_private_address_after_the_check(vendor: VendorFake) -> None:
    port = int(vendor.url.rsplit(":", 1)[1])
    # The guard's DNS answers a public address (checked, and the one connected to), then loopback for
    # anyone asking again; and the system's own resolver says localhost is 127.0.0.1, where the fake
    # listens. A client that connected by name after the check would reach the fake.
    resolve = _Resolver(["93.184.216.34"], ["127.0.0.1"])
    egress = Egress(resolve=resolve)
    try:
        with pytest.raises(EgressError):
            await egress.send("GET", f"http://localhost:{port}/", EgressLimits(timeout_seconds=1.0))
    finally:
        await egress.close()
    assert resolve.asked == ["localhost"]
    assert vendor.requests == []  # the loopback fake was never reached


async def test_answers_are_capped_redirects_not_followed_and_host_kept(vendor: VendorFake) -> None:
    from tests.support.vendor_fake import Scripted

    egress = Egress(resolve=_Resolver(["127.0.0.1"]))
    allowed = EgressLimits(timeout_seconds=2, allow_private=True, max_response_bytes=1000)
    port = vendor.url.rsplit(":", 1)[1]
    try:
        vendor.queue(Scripted(200, raw=b"x" * 5000))
        with pytest.raises(EgressError) as big:
            await egress.send("GET", f"http://cmms.plant.example:{port}/big", allowed)
        assert big.value.failure == "too_large"
        vendor.queue(Scripted(302, {}, {"Location": "http://169.254.169.254/"}))
        moved = await egress.send("GET", f"http://cmms.plant.example:{port}/moved", allowed)
        assert moved.is_redirect and moved.status == 302
        assert [r.path for r in vendor.requests] == ["/big", "/moved"]  # nothing followed
        assert vendor.requests[-1].headers["host"] == f"cmms.plant.example:{port}"
        with pytest.raises(EgressError) as scheme:
            await egress.send("GET", "file:///etc/passwd", allowed)
        assert scheme.value.failure == "refused"
    finally:
        await egress.close()
