"""The WebSocket side of the ASGI router: `/ws` → WsConsumer, behind an origin check."""

from __future__ import annotations

from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings
from django.urls import path

from events.consumers import WsConsumer


class BrowserOriginValidator(OriginValidator):
    """ALLOWED_HOSTS (and CORS_ORIGIN, the original's web UI) for browsers; clients that send no
    Origin header (relays, CLI tools: not a cross-site browser request) are let through, as on
    the original's /ws."""

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def websocket_app():
    checked = AllowedHostsOriginValidator(URLRouter([path("ws", WsConsumer.as_asgi())]))
    return BrowserOriginValidator(checked.application, [*checked.allowed_origins, settings.CORS_ORIGIN])
