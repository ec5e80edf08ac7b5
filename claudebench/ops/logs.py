"""Structured logs with structlog (and django-structlog for Django's own requests).

Two lines are ours: `claudebench.access`, one per request on the machine surfaces (request id,
method, path, status, actor, duration), and `claudebench.calls`, one per handler call from the
pipeline (request id, actor, handler, event id, task id, transport, duration, outcome). Both
are checked with `isEnabledFor` first, so a level above INFO costs one comparison per call.
Readable `key=value` text by default; one JSON object per line when CB_LOG_JSON=true (then every
other logger's records are JSON too).

They are written at least twice per request, so they are cheap: in text mode the two lines are
rendered here with one f-string each (the same `key='value'` text structlog's KeyValueRenderer
makes) and handed to the stdlib logger without structlog's processor chain, and the console
handler buffers its writes (BufferedStreamHandler: one write per 50 ms or 64 KiB instead of one
per line; logging.shutdown() flushes it at exit). The request id comes from REQUEST_ID, set by
the front (ops/front.py) for every request.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import weakref
from typing import Any

import structlog

ACCESS = logging.getLogger("claudebench.access")
CALLS = logging.getLogger("claudebench.calls")
_access = structlog.get_logger("claudebench.access")
_calls = structlog.get_logger("claudebench.calls")
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("cb_request_id", default=None)
JSON = False  # CB_LOG_JSON, set by configure()


class BufferedStreamHandler(logging.StreamHandler):
    """A StreamHandler that gathers lines and writes them together: when FLUSH_BYTES are waiting,
    or FLUSH_S after the first waiting line (a daemon thread), or at exit. ERROR and above are
    written at once."""

    FLUSH_S = 0.05
    FLUSH_BYTES = 64 * 1024

    def __init__(self, stream=None):
        super().__init__(stream)
        self._parts: list[str] = []
        self._size = 0
        self._due = threading.Condition(self.lock)
        threading.Thread(target=_flusher, args=(weakref.ref(self),), name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.append(line, urgent=record.levelno >= logging.ERROR)

    def append(self, line: str, *, urgent: bool = False) -> None:
        """Queue one finished line (`_emit` hands its lines straight here)."""
        with self.lock:
            self._parts.append(line)
            self._size += len(line)
            if self._size >= self.FLUSH_BYTES or urgent:
                self._write()
            elif len(self._parts) == 1:
                self._due.notify()

    def _write(self) -> None:  # with self.lock held
        if not self._parts:
            return
        text, self._parts, self._size = "".join(self._parts), [], 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # a closed stream at interpreter exit: nothing else to do with the lines
            pass

    def flush(self) -> None:
        with self.lock:
            self._write()


PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"  # settings.LOGGING's "plain"


class Formatter(logging.Formatter):
    """The stdlib formatter, with the date and time rendered once per second, not per record."""

    _second: tuple[int, str] = (-1, "")

    def _stamp(self, created: float, msecs: int) -> str:
        second = int(created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return f"{cached[1]},{msecs:03d}"

    def plain_line(self, name: str, message: str) -> str | None:
        """The INFO line this formatter would make of `message` from logger `name`, made without a
        LogRecord; None unless the format is PLAIN_FORMAT with the default time format."""
        if self._fmt != PLAIN_FORMAT or self.datefmt is not None or type(self).formatTime is not Formatter.formatTime:
            return None
        now = time.time()
        return f"{self._stamp(now, int((now - int(now)) * 1000))} INFO {name} {message}\n"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self._stamp(record.created, int(record.msecs))


def _flusher(ref: weakref.ref[BufferedStreamHandler]) -> None:
    while (handler := ref()) is not None:
        with handler.lock:
            if not handler._parts:
                handler._due.wait(1.0)
            if handler._parts:
                handler._due.wait(handler.FLUSH_S)  # let more lines gather
                handler._write()
        del handler


def _console_only(logger: logging.Logger) -> BufferedStreamHandler | None:
    """The buffered console handler when it is the one place an INFO record of `logger` goes,
    with nothing that could change or drop the record on the way (no filters, no other handler:
    pytest's caplog, say, adds one to the root, and then records take the stdlib path)."""
    if logger.filters:
        return None
    found: BufferedStreamHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for h in current.handlers:
            if found is not None or type(h) is not BufferedStreamHandler or h.filters or h.level > logging.INFO:
                return None
            found = h
        if not current.propagate:
            break
        current = current.parent
    return found


def _emit_json(structured: Any, event: str, fields: dict[str, Any]) -> None:
    rid = REQUEST_ID.get()
    if rid is not None:
        fields["request_id"] = rid
    structured.info(event, **fields)


def _emit_text(logger: logging.Logger, message: str) -> None:
    """One text line `event='…' key=repr(value) …` (the text structlog's KeyValueRenderer makes;
    the two lines below render it with one f-string each, fields that are None left out). Twice
    per request: when the line can only end up on the console, render it here and queue it,
    skipping the LogRecord and the handler chain (same text, a fraction of the cost)."""
    rid = REQUEST_ID.get()
    if rid is not None:
        message = f"{message} request_id={rid!r}"
    handler = _console_only(logger)
    formatter = handler.formatter if handler is not None else None
    line = formatter.plain_line(logger.name, message) if isinstance(formatter, Formatter) else None
    if line is None:
        logger.info(message)
    else:
        handler.append(line)  # type: ignore[union-attr]


def configure(logging_dict: dict[str, Any], *, json: bool, request_level: str) -> None:
    """Adjust the settings' LOGGING in place and configure structlog (called from settings)."""
    global JSON
    JSON = json
    # Caller, thread and process details are in no format of ours; the logging docs' optimisation
    # switches skip gathering them for every record (a stack walk for the caller).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    plain = logging_dict["formatters"].get("plain")
    if plain is not None and "()" not in plain:
        plain["()"] = "claudebench.ops.logs.Formatter"
    console = logging_dict["handlers"]["console"]
    if console.get("class") == "logging.StreamHandler":
        console["class"] = "claudebench.ops.logs.BufferedStreamHandler"
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


def access(*, method: str, path: str, status: int, duration_ms: float | None = None, client: str | None = None,
           actor: str | None = None) -> None:
    """The per-request line (the front checks ACCESS.isEnabledFor(INFO) first); None fields are
    left out."""
    if JSON:
        _emit_json(_access, "request", {"method": method, "path": path, "status": status,
                                        "duration_ms": duration_ms, "client": client, "actor": actor})
        return
    message = f"event='request' method={method!r} path={path!r} status={status!r}"
    if duration_ms is not None:
        message = f"{message} duration_ms={duration_ms!r}"
    if client is not None:
        message = f"{message} client={client!r}"
    if actor is not None:
        message = f"{message} actor={actor!r}"
    _emit_text(ACCESS, message)


def task_id(wire_in: Any, out: Any) -> str | None:
    for source in (out, wire_in):
        if isinstance(source, dict):
            for name in ("taskId", "id"):
                value = source.get(name)
                if isinstance(value, str) and value.startswith("t-"):
                    return value
    return None


_scopes: Any = None  # claudebench.security.scopes, imported on first use (this module loads with settings)


def call(ctx, *, outcome: str, seconds: float, wire_in: Any = None, out: Any = None, code: int | None = None) -> None:
    """The per-call line (the pipeline checks CALLS.isEnabledFor(INFO) first)."""
    global _scopes
    if _scopes is None:
        from claudebench.security import scopes

        _scopes = scopes
    principal = _scopes.as_principal(ctx.meta.principal) or _scopes.current.get()
    duration_ms = round(seconds * 1000, 3)
    tid = task_id(wire_in, out)
    if JSON:
        fields: dict[str, Any] = {"handler": ctx.spec.event, "event_id": ctx.event_id, "actor": ctx.actor,
                                  "transport": ctx.meta.transport, "duration_ms": duration_ms, "outcome": outcome}
        if principal is not None:
            fields["principal"] = principal.actor
        if tid:
            fields["task_id"] = tid
        if code is not None:
            fields["code"] = code
        _emit_json(_calls, "handler_call", fields)
        return
    message = (f"event='handler_call' handler={ctx.spec.event!r} event_id={ctx.event_id!r} actor={ctx.actor!r} "
               f"transport={ctx.meta.transport!r} duration_ms={duration_ms!r} outcome={outcome!r}")
    if principal is not None:
        message = f"{message} principal={principal.actor!r}"
    if tid:
        message = f"{message} task_id={tid!r}"
    if code is not None:
        message = f"{message} code={code!r}"
    _emit_text(CALLS, message)
