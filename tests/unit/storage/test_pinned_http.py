"""http(s) model data connects to the address that was checked: a DNS answer that changes afterwards is not used."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest

from modelhost.errors import DeploymentError
from modelhost.storage.artifacts import ArtifactCache
from modelhost.storage.limits import DataLimits
from modelhost.storage.pinned_http import CouldNotConnect, checked_addresses, proxied
from modelhost.storage.uris import parse_model_data_url

PUBLIC = "93.184.216.34"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct connections (a proxy of the machine running the tests would take the hops by name)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def archive() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("serving.properties")
        body = b"engine=Python\n"
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    return data.getvalue()


class RebindingResolver:
    """Answers a public address the first time a name is looked up and 127.0.0.1 every time after."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return [PUBLIC] if self.calls.count(host) == 1 else ["127.0.0.1"]


class Recorder:
    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((str(request.url), request.headers["Host"], request.extensions.get("sni_hostname")))
        if self.answer is not None and len(self.seen) == 1:
            return self.answer
        return httpx.Response(200, stream=httpx.ByteStream(archive()))


def cache(tmp_path: Path, recorder: Recorder, resolver: RebindingResolver, allow: bool = False) -> ArtifactCache:
    return ArtifactCache(
        tmp_path / "cache",
        max_extract_bytes=1 << 20,
        http_transport=httpx.MockTransport(recorder),
        limits=DataLimits(allow_private_http=allow),
        resolver=resolver,
    )


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_connection_goes_to_the_checked_address_not_a_later_answer(tmp_path: Path, scheme: str) -> None:
    recorder, resolver = Recorder(), RebindingResolver()
    folder = cache(tmp_path, recorder, resolver).prepare(
        parse_model_data_url(f"{scheme}://models.example:8443/m.tar.gz"), timeout_s=10
    )
    assert (folder / "serving.properties").is_file()
    assert resolver.calls == ["models.example"]  # looked up once, for the check
    sni = "models.example" if scheme == "https" else None
    # the URL names the checked address; Host (and SNI, so the certificate is verified) keep the name
    assert recorder.seen == [(f"{scheme}://{PUBLIC}:8443/m.tar.gz", "models.example:8443", sni)]
    assert all("127.0.0.1" not in url for url, _, _ in recorder.seen)


def test_a_redirect_is_checked_and_pinned_the_same_way(tmp_path: Path) -> None:
    redirect = httpx.Response(302, headers={"Location": "https://cdn.example/blob?sig=1"})
    recorder, resolver = Recorder(redirect), RebindingResolver()
    cache(tmp_path, recorder, resolver).prepare(parse_model_data_url("https://models.example/m.tar.gz"), 10)
    assert resolver.calls == ["models.example", "cdn.example"]
    assert recorder.seen == [
        (f"https://{PUBLIC}/m.tar.gz", "models.example", "models.example"),
        (f"https://{PUBLIC}/blob?sig=1", "cdn.example", "cdn.example"),
    ]


def test_a_redirect_whose_name_now_answers_loopback_is_refused(tmp_path: Path) -> None:
    # the same name again: its second lookup answers 127.0.0.1, which the check of that hop refuses
    redirect = httpx.Response(302, headers={"Location": "/elsewhere"})
    recorder, resolver = Recorder(redirect), RebindingResolver()
    with pytest.raises(DeploymentError) as failure:
        cache(tmp_path, recorder, resolver).prepare(parse_model_data_url("http://models.example/m.tar.gz"), 10)
    assert "models.example is a loopback, link-local or private address (127.0.0.1)" in str(failure.value)
    assert [url for url, _, _ in recorder.seen] == [f"http://{PUBLIC}/m.tar.gz"]


def test_a_name_that_does_not_resolve_is_not_sent_unpinned(tmp_path: Path) -> None:
    def unknown(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    recorder = Recorder()
    c = ArtifactCache(tmp_path / "cache", 1 << 20, http_transport=httpx.MockTransport(recorder), resolver=unknown)
    with pytest.raises(DeploymentError, match="could not connect to the host"):
        c.prepare(parse_model_data_url("http://models.example/m.tar.gz"), 10)
    assert recorder.seen == []  # a second lookup (by httpx) might have answered 127.0.0.1


def test_with_the_allowance_addresses_are_still_pinned(tmp_path: Path) -> None:
    recorder, resolver = Recorder(), RebindingResolver()
    cache(tmp_path, recorder, resolver, allow=True).prepare(parse_model_data_url("https://models.example/m"), 10)
    assert recorder.seen == [(f"https://{PUBLIC}/m", "models.example", "models.example")]


def test_the_next_checked_address_is_tried_when_one_refuses(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "2606:2800:220:1::1":
            raise httpx.ConnectError("unreachable")
        return httpx.Response(200, stream=httpx.ByteStream(archive()))

    c = ArtifactCache(
        tmp_path / "cache",
        1 << 20,
        http_transport=httpx.MockTransport(handler),
        resolver=lambda host, port: ["2606:2800:220:1::1", PUBLIC],
    )
    c.prepare(parse_model_data_url("http://models.example/m.tar.gz"), 10)
    assert seen == ["2606:2800:220:1::1", PUBLIC]


def test_redirect_loops_and_odd_schemes_are_refused(tmp_path: Path) -> None:
    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "/again"})

    public = lambda host, port: [PUBLIC]  # noqa: E731
    c = ArtifactCache(tmp_path / "c1", 1 << 20, http_transport=httpx.MockTransport(loop), resolver=public)
    with pytest.raises(DeploymentError, match="redirects more than 20 times"):
        c.prepare(parse_model_data_url("http://models.example/m.tar.gz"), 10)

    def to_file(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"Location": "file:///etc/passwd"})

    c = ArtifactCache(tmp_path / "c2", 1 << 20, http_transport=httpx.MockTransport(to_file), resolver=public)
    with pytest.raises(DeploymentError, match="redirects to file:///etc/passwd, which is not an http"):
        c.prepare(parse_model_data_url("http://models.example/m.tar.gz"), 10)


def test_behind_a_proxy_a_hop_is_checked_but_sent_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    url = httpx.URL("https://models.example/m.tar.gz")
    assert not proxied(url)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    assert proxied(url) and not proxied(httpx.URL("https://direct.example/m"))
    limits = DataLimits()
    resolver = RebindingResolver()
    # the proxy resolves and connects: sent by name, after the same check where the name resolves here
    assert checked_addresses(url, limits, resolver, via_proxy=True) == []
    with pytest.raises(DeploymentError, match="is a loopback, link-local or private address"):
        checked_addresses(url, limits, resolver, via_proxy=True)  # the second answer is 127.0.0.1

    def unknown(host: str, port: int) -> list[str]:
        raise OSError("no local DNS for outside names")

    assert checked_addresses(url, limits, unknown, via_proxy=True) == []
    with pytest.raises(CouldNotConnect):
        checked_addresses(url, limits, unknown)  # direct: never sent unresolved
