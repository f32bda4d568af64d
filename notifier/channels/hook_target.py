"""Where a webhook subscriber's requests may go: public addresses only, unless configured otherwise.

A public sign-up names the URL, so without this check anyone could make the notifier POST to its own
network (Redis on 127.0.0.1, a cloud metadata endpoint on 169.254.169.254, an intranet host): SSRF.
Every address the host resolves to must be globally routable; ``subscribers.webhook_allow_private``
lifts that (an intranet deployment, the tests' local receivers). Checked at sign-up and again before
every delivery (a name can be re-pointed after it was confirmed). What is not covered: a name that
resolves differently between this check and the connection (DNS rebinding within seconds).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit


class NotAllowed(ValueError):
    """The URL's host is private, loopback, link-local or reserved, or it does not resolve."""


def check_target(url: str, allow_private: bool) -> None:
    """NotAllowed (a reason to show) unless every address of ``url``'s host is public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise NotAllowed("has a host that does not resolve") from None
    if allow_private:
        return
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise NotAllowed("points to a private, loopback or link-local address, which is refused "
                             "(subscribers.webhook_allow_private allows it)")
