"""C-django: a bare async Django view answering a fixed JSON-RPC result (PERF.md).

Served by uvicorn as `claudebench.bench.django_ceiling:application --factory` with
DJANGO_SETTINGS_MODULE=claudebench.bench.django_settings, which also makes this module the URLconf.
"""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse
from django.urls import path

_FIXED_RESULT = {"id": "t-ceiling", "text": "bench", "status": "pending", "priority": 50,
                 "createdAt": "2026-01-01T00:00:00.000Z"}  # fmt: skip


async def rpc(request: HttpRequest) -> HttpResponse:
    body = request.body
    request_id = orjson.loads(body).get("id") if body else None
    payload = orjson.dumps({"jsonrpc": "2.0", "result": _FIXED_RESULT, "id": request_id})
    return HttpResponse(payload, content_type="application/json")


urlpatterns = [path("", rpc), path("rpc", rpc)]


def application():
    """uvicorn factory: Django's ASGI handler, set up with the C-django settings."""
    from django.core.asgi import get_asgi_application

    return get_asgi_application()
