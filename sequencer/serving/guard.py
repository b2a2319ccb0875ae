"""The guard against other sites' pages: a request whose `Host` or `Origin` says a browser sent it
from another site's page is refused before the app sees it.

An ASGI middleware rather than a check in the endpoint, so that it covers every path, the page
and the docs included. `RefuseOtherSites` says why binding to 127.0.0.1 is not enough, and what
it lets through.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from sequencer.serving.requests import ServingError, shown


class RefuseOtherSites:
    """An ASGI middleware that answers a request another site's page sent with an error, before the app sees it.

    Binding to 127.0.0.1 keeps other machines out, but not the pages a local browser shows: any
    page can POST to a local server (a `text/plain` body needs no CORS preflight, and the body is
    read as JSON whatever its type), and one on a domain that resolves to the server's address
    (DNS rebinding) can also read the answer. So a request whose `Host` names the server by a DNS
    name other than localhost, `allowed_hosts` and the `host` it is bound to gets a 400 (an IP
    address cannot be rebound), and one whose `Origin` is neither the server's own nor one of
    those names a 403. Clients that are not browsers (curl, scripts) send no Origin and name the
    server as they reach it.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: str, host: str):
        self.app = app
        names = [name.lower() for name in allowed_hosts.split(",") if name]
        if not _named_by_address(host.lower()):  # bound to a name (host=box.lan): the server answers to it
            names.append(host.lower())
        self.names = frozenset(names)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = _refusal(Headers(scope=scope), self.names) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["error"] = refusal.message  # for RequestLog
        await JSONResponse({"error": refusal.message}, status_code=refusal.status)(scope, receive, send)


def _refusal(headers: Headers, names: frozenset[str]) -> ServingError | None:
    """Why a request of these headers is refused by `RefuseOtherSites`' rules, or None."""
    host = headers.get("host")  # none: HTTP/1.0, which browsers do not send
    address = None
    if host is not None:
        try:
            address = _host_and_port(host)
        except ValueError:
            return ServingError(400, f"the Host header {shown(host)} is not a host name with an optional port")
        if "*" not in names and not _named_by_address(address[0]) and address[0] not in names:
            return ServingError(
                400,
                f"the Host header names {shown(address[0])}, which this server does not answer to; it answers to "
                "IP addresses, localhost and the names in allowed_hosts",
            )
    origin = headers.get("origin")
    if origin is not None and not _same_site(origin, address, names):
        return ServingError(
            403,
            f"the request comes from another site's page (Origin {shown(origin)}); this server answers its own "
            "page, pages of the names in allowed_hosts, and clients that send no Origin",
        )
    return None


def _same_site(origin: str, address: tuple[str, int | None] | None, names: frozenset[str]) -> bool:
    """Whether a page of `origin` is the server's own (the host and port the request names) or an allowed host's."""
    try:
        parts = urlsplit(origin)  # ValueError for a bracket left open ("http://[")
        if parts.scheme not in ("http", "https"):  # "null": a sandboxed page or a file
            return False
        origin_host, origin_port = _host_and_port(parts.netloc)
    except ValueError:
        return False
    if origin_host in names:  # an allowed host, on any port
        return True
    if address is None or origin_host != address[0]:
        return False
    # A Host without a port comes through a proxy on a default port (perhaps https); otherwise the
    # page's port, or its scheme's default, must be the one the request names.
    return address[1] is None or (origin_port or {"http": 80, "https": 443}[parts.scheme]) == address[1]


def _host_and_port(netloc: str) -> tuple[str, int | None]:
    """("localhost", 8000) for `localhost:8000` (a Host header, or an origin's authority); ValueError if it is none."""
    if not netloc or any(character in netloc for character in "/?#@\\"):
        raise ValueError(netloc)
    parts = urlsplit("//" + netloc)
    if not parts.hostname:
        raise ValueError(netloc)
    return parts.hostname, parts.port  # .port raises ValueError for a port that is no number


def _named_by_address(host: str) -> bool:
    """Whether a Host names the server by localhost or an IP address, which no other site can rebind."""
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
