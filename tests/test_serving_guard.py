"""sequencer/serving/guard.py: requests other sites' pages send are refused, those of the server's own page not.

The app decodes with a stub backend (`Recorder`): the guard answers before anything is decoded.
"""

import json

import pytest
from starlette.datastructures import Headers
from test_serving import Recorder, serving, stub_config

from sequencer.serving.guard import _refusal


@pytest.fixture
def backend():
    return Recorder(seconds=0)


@pytest.fixture
def config():
    return stub_config()


@pytest.fixture
def client(backend, config):
    with serving(backend, config) as client:
        yield client


def test_requests_from_other_sites_pages_are_refused(client, backend, config):
    hello = {"json": {"text": ["Hello."]}}

    def status(app_client=client, **headers):
        return app_client.post("/translate", **hello, headers=headers).status_code

    assert status() == 200  # curl, a script: no Origin
    for own in ("http://127.0.0.1:8000", "http://localhost:8000", "http://[::1]:8000", "http://127.0.1.1:8000"):
        assert status(Host=own.removeprefix("http://"), Origin=own) == 200
    assert status(Host="LocalHost", Origin="https://localhost") == 200  # through a TLS proxy on the default port
    # DNS rebinding: a page of attacker.example, whose name now resolves to this server.
    rebinding = client.post("/translate", **hello, headers={"Host": "attacker.example:8000"})
    assert rebinding.status_code == 400
    assert rebinding.json()["error"] == (
        'the Host header names "attacker.example", which this server does not answer to; it answers to '
        "IP addresses, localhost and the names in allowed_hosts"
    )
    for origin in (
        "http://attacker.example",
        "http://127.0.0.1:9000",
        "http://127.0.0.1",
        "http://localhost:8000",
        "null",
        "http://[",  # not a URL at all: urlsplit raises
        "http://[::1",
    ):
        foreign = client.post("/translate", **hello, headers={"Origin": origin, "Content-Type": "text/plain"})
        assert foreign.status_code == 403
        assert foreign.json()["error"] == (
            f"the request comes from another site's page (Origin {json.dumps(origin)}); this server answers its own "
            "page, pages of the names in allowed_hosts, and clients that send no Origin"
        )
    # Behind a reverse proxy: its public name, as Host (passed through) or as the page's Origin (Host rewritten).
    with serving(backend, config.replace(allowed_hosts="translate.example.org")) as proxied:
        assert status(proxied, Host="translate.example.org") == 200
        assert status(proxied, Origin="https://translate.example.org") == 200
        assert status(proxied, Host="attacker.example") == 400
    with serving(backend, config.replace(host="box.lan")) as named:  # bound to a name: it answers to it
        assert status(named, Host="box.lan:8000", Origin="http://box.lan:8000") == 200
        assert status(named, Host="attacker.example:8000") == 400
    with serving(backend, config.replace(allowed_hosts="*")) as anywhere:
        assert status(anywhere, Host="translator.lan:8000") == 200
        assert status(anywhere, Origin="http://attacker.example") == 403
    # HTTP/1.0 without a Host (a health checker's): nothing to rebind; with an Origin, no site to match.
    assert _refusal(Headers(raw=[]), frozenset()) is None
    assert _refusal(Headers(raw=[(b"origin", b"http://127.0.0.1")]), frozenset()).status == 403
