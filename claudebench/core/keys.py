"""Every Redis key and pub/sub channel name, built in one place (SPEC §6).

Lua scripts receive all their keys from here through KEYS, so a later Redis Cluster mode (hash
tags) changes this module and nothing else.
"""

from __future__ import annotations

PREFIX = "cb:"

# --- event bus (SPEC §6.1) ------------------------------------------------------------------------
DUPLICATES_PREVENTED = "cb:duplicates:prevented"
STREAM_PATTERN = "cb:stream:*"


def stream(event_type: str) -> str:
    return f"cb:stream:{event_type}"


def processed_event(event_id: str) -> str:
    """Exactly-once marker of one published event id (SPEC §4.6: one key per id, with a TTL)."""
    return f"cb:processed:event:{event_id}"


def partition(partition_key: str) -> str:
    return f"cb:partition:{partition_key}"


def channel(event_type: str) -> str:
    """Pub/sub channel of an event: the bare event type (SPEC §4.2, §2.9)."""
    return event_type


def dispatch(envelope_id: str) -> str:
    """Lock that lets exactly one process run a pub/sub-triggered handler call (SPEC §4.4)."""
    return f"cb:dispatch:{envelope_id}"


# --- durable subscribers, dead letters, audit streams (SPEC §4.7, §6.1; events/) -------------------
STREAM_PREFIX = "cb:stream:"
SESSION_STREAM_PREFIX = "cb:stream:session:"  # session streams, never consumed (SPEC §4.7)
AUDIT_PATTERN = "cb:audit:*"
AUDIT_PREFIX = "cb:audit:"
AUDIT_GENERAL = "cb:audit:general"
AUDIT_HOOK_DECISIONS = "cb:audit:hooks:decisions"
DLQ_PREFIX = "cb:dlq:"
DLQ_PATTERN = "cb:dlq:*"


def stream_type(key: str) -> str | None:
    """The event type of a `cb:stream:{type}` key, else None."""
    return key[len(STREAM_PREFIX):] if key.startswith(STREAM_PREFIX) else None


def audit_tool(tool: str) -> str:
    return f"cb:audit:tools:{tool}"


def dlq(event_type: str) -> str:
    """Dead letters of one event type (SPEC §4.7)."""
    return f"cb:dlq:{event_type}"


def dlq_type(key: str) -> str | None:
    return key[len(DLQ_PREFIX):] if key.startswith(DLQ_PREFIX) else None


def consumer_metrics(group: str) -> str:
    """Counters of one subscription's consumer group (SPEC §4.7)."""
    return f"cb:metrics:consumer:{group}"


def bus_done(scope: str, event_id: str) -> str:
    """Idempotency marker: `scope` already applied the effect of event `event_id`."""
    return f"cb:bus:done:{scope}:{event_id}"


# --- tasks (SPEC §6.5) ------------------------------------------------------------------------------
PENDING_TASKS = "cb:queue:tasks:pending"
TASK_ID_COUNTER = "cb:counter:task:lastid"
METRICS_QUEUES = "cb:metrics:queues"
METRICS_TASK_DELETE = "cb:metrics:task.delete"
TASK_PATTERN = "cb:task:t-*"


def task(task_id: str) -> str:
    return f"cb:task:{task_id}"


def instance_queue(instance_id: str) -> str:
    return f"cb:queue:instance:{instance_id}"


def task_assignment_history(task_id: str) -> str:
    return f"cb:history:task:{task_id}:assignments"


def task_completion_history(task_id: str) -> str:
    return f"cb:history:task:{task_id}:completions"


def task_attachments(task_id: str) -> str:
    return f"cb:task:{task_id}:attachments"


def task_attachment(task_id: str, key: str) -> str:
    return f"cb:task:{task_id}:attachment:{key}"


def task_attachment_pattern(task_id: str) -> str:
    return f"cb:task:{task_id}:attachment:*"


def metrics_instance(instance_id: str) -> str:
    return f"cb:metrics:instance:{instance_id}"


def is_task_hash_key(key: str) -> bool:
    """`cb:task:t-<digits>` with no further colon: a task hash, not an attachment key."""
    return key.startswith("cb:task:t-") and key.count(":") == 2


# --- instances and services (SPEC §6.4) -------------------------------------------------------------
INSTANCE_PATTERN = "cb:instance:*"
GOSSIP_HEALTH = "cb:gossip:health"
SERVICE_POSTGRES = "cb:service:postgres:status"
SERVICE_MCP = "cb:service:mcp:status"


def instance(instance_id: str) -> str:
    return f"cb:instance:{instance_id}"


# --- start-up (SPEC §12.3) --------------------------------------------------------------------------
HYDRATION_LOCK = "cb:hydration:lock"
HYDRATION_DONE = "cb:hydration:done"


# --- MCP surface and its welcome page (SPEC §2.7, §6.2, §6.4) ---------------------------------------
METRICS_MCP_CALLS = "cb:metrics:mcp:calls"
INSTANCES_ACTIVE = "cb:instances:active"


def metrics_events(event: str) -> str:
    return f"cb:metrics:events:{event}"
