"""The start-up rule for exposing the server (issue 10).

HOST on a loopback address (the default 127.0.0.1, localhost, ::1): starts as always. HOST on any
other address (0.0.0.0, a LAN address, ::): refuses to start unless at least one unrevoked API
token exists, so the server is never reachable from the network with nobody able to call it
but loopback clients — and never with the illusion that it is protected when it is not. Callers
from other machines always need a token (only loopback clients may call without one).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings

MESSAGE = (
    "HOST={host} is not a loopback address and no active API token exists: refusing to start. "
    "Issue one first (`python manage.py issue_token <name> --scope agent`), or bind HOST=127.0.0.1."
)


class UnsafeBind(RuntimeError):
    pass


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_sync(host: str | None = None) -> None:
    """Raise UnsafeBind when `host` (default settings.HOST) is exposed and no token exists."""
    host = host or settings.HOST
    if is_loopback_host(host):
        return
    from claudebench.security.tokens import active_tokens_exist

    if not active_tokens_exist():
        raise UnsafeBind(MESSAGE.format(host=host))


async def refuse_unsafe_bind() -> None:
    from asgiref.sync import sync_to_async

    if is_loopback_host(settings.HOST):
        return
    await sync_to_async(check_sync)()
