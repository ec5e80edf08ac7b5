"""Structured logs with structlog (and django-structlog for Django's own requests).

Two lines are ours: `claudebench.access`, one per request on the machine surfaces (request id,
method, path, status, actor, duration), and `claudebench.calls`, one per handler call from the
pipeline (request id, actor, handler, event id, task id, transport, duration, outcome). Both
are checked with `isEnabledFor` first, so a level above INFO costs one comparison per call.
Readable `key=value` text by default; one JSON object per line when CB_LOG_JSON=true (then every
other logger's records are JSON too).
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

ACCESS = logging.getLogger("claudebench.access")
CALLS = logging.getLogger("claudebench.calls")
_access = structlog.get_logger("claudebench.access")
_calls = structlog.get_logger("claudebench.calls")


def configure(logging_dict: dict[str, Any], *, json: bool, request_level: str) -> None:
    """Adjust the settings' LOGGING in place and configure structlog (called from settings)."""
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    loggers = logging_dict.setdefault("loggers", {})
    for name in ("claudebench.access", "claudebench.calls", "django_structlog"):
        loggers[name] = {"level": request_level}
    if json:
        logging_dict["formatters"]["json"] = {
            "()": structlog.stdlib.ProcessorFormatter,
            "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                           structlog.processors.format_exc_info, structlog.processors.JSONRenderer()],
            "foreign_pre_chain": [*shared, structlog.stdlib.add_logger_name],
        }
        logging_dict["handlers"]["console"]["formatter"] = "json"
        tail = [structlog.stdlib.add_logger_name, structlog.stdlib.ProcessorFormatter.wrap_for_formatter]
        structlog.configure(processors=[structlog.stdlib.filter_by_level, *shared, *tail],
                            logger_factory=structlog.stdlib.LoggerFactory(),
                            wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=True)
    else:
        # Text: the stdlib formatter prints time, level and logger; structlog renders the rest.
        structlog.configure(
            processors=[structlog.stdlib.filter_by_level, structlog.contextvars.merge_contextvars,
                        structlog.processors.format_exc_info,
                        structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True)],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=True)


def access(**fields: Any) -> None:
    _access.info("request", **fields)


def task_id(wire_in: Any, out: Any) -> str | None:
    for source in (out, wire_in):
        if isinstance(source, dict):
            for name in ("taskId", "id"):
                value = source.get(name)
                if isinstance(value, str) and value.startswith("t-"):
                    return value
    return None


def call(ctx, *, outcome: str, seconds: float, wire_in: Any = None, out: Any = None, code: int | None = None) -> None:
    """The per-call line (the pipeline checks CALLS.isEnabledFor(INFO) first)."""
    from claudebench.security.scopes import as_principal, current

    principal = as_principal(ctx.meta.principal) or current.get()
    fields: dict[str, Any] = {
        "handler": ctx.spec.event, "event_id": ctx.event_id, "actor": ctx.actor,
        "transport": ctx.meta.transport, "duration_ms": round(seconds * 1000, 3), "outcome": outcome,
    }
    if principal is not None:
        fields["principal"] = principal.actor
    tid = task_id(wire_in, out)
    if tid:
        fields["task_id"] = tid
    if code is not None:
        fields["code"] = code
    _calls.info("handler_call", **fields)
