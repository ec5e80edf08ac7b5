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


def gate(call_event_id: str) -> str:
    """Set by lua/pipeline_admit.lua when it lets a call through, for that call's writes sent in
    the same round trip (lua/gated_writes.lua); short-lived."""
    return f"cb:gate:{call_event_id}"


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
MCP_SESSION_PATTERN = "cb:mcp:session:*"


def mcp_session(session_id: str) -> str:
    """A live MCP session (SPEC §2.7): shared by every web process, expires when idle."""
    return f"cb:mcp:session:{session_id}"


def instance(instance_id: str) -> str:
    return f"cb:instance:{instance_id}"


# --- trust boundary (issue 10, claudebench/security) ------------------------------------------------
def auth_token(prefix: str) -> str:
    """Cached state of the API token with this lookup prefix (security/tokens.py)."""
    return f"cb:auth:token:{prefix}"


# --- start-up (SPEC §12.3) --------------------------------------------------------------------------
HYDRATION_LOCK = "cb:hydration:lock"
HYDRATION_DONE = "cb:hydration:done"


# --- hooks: validator, audit, todos, sessions, config (SPEC §6.1, §6.6–6.8, §6.5 config) -----------
HOOK_RULES = "cb:hooks:rules"  # JSON of the validator rules, cached from PostgreSQL (ours)
HOOK_RULES_VERSION = "cb:hooks:rules:version"  # bumped on every rule change (ours)
# AUDIT_GENERAL, AUDIT_HOOK_DECISIONS and audit_tool() are defined with the event bus keys above.
METRICS_COUNTERS = "cb:metrics:counters"
METRICS_VALIDATION_CACHE = "cb:metrics:validation:cache"
METRICS_GLOBAL_HOOKS = "cb:metrics:global:hooks"
METRICS_REHYDRATIONS = "cb:metrics:session:rehydrations"
METRICS_SNAPSHOTS = "cb:metrics:snapshots"
CREATED_FILES = "cb:created:files"
CREATED_TASKS = "cb:created:tasks"
STATS_API = "cb:stats:api"
TODOS_AGGREGATE = "cb:aggregate:todos:all-instances"
TODOS_STATUS_CHANGES = "cb:history:todos:status-changes"
TODO_MAPPING_GLOBAL = "cb:mapping:todo-task:global"
TODOS_HIGH_PRIORITY = "cb:persisted:todos:high-priority"
TODOS_COMPLETED_NOTIFICATIONS = "cb:notifications:todos:completed"
TODOS_CLEANUP = "cb:cleanup:todos:completed"
HOOK_EVENT_PATTERN = "hook.*.executed"


def validation(tool: str, simplified: str) -> str:
    return f"cb:validation:{tool}:{simplified}"


def validation_blocked(tool: str, slug: str) -> str:
    return f"cb:validation:{tool}:{slug}:blocked"


def rejection_reason(tool: str, slug: str) -> str:
    return f"cb:rejection:{tool}:{slug}:reason"


def warnings(tool: str, slug: str) -> str:
    return f"cb:warnings:{tool}:{slug}"


def modifications(tool: str) -> str:
    return f"cb:modifications:{tool}:sudo"


def tool_log(tool: str, ms: int) -> str:
    return f"cb:log:tool:{tool}:{ms}"


def metrics_tool(tool: str) -> str:
    return f"cb:metrics:tools:{tool}"


def errors(name: str) -> str:
    """Error streak counter of a tool or an instance (same namespace in the original, SPEC §6.4)."""
    return f"cb:errors:{name}"


def prompt_history(ms: int) -> str:
    return f"cb:history:prompts:{ms}"


def agent_stop_events(instance_id: str) -> str:
    return f"cb:events:agent_stop:{instance_id}"


def notifications(session_id: str) -> str:
    return f"cb:notifications:{session_id}"


def notification_latest(instance_id: str) -> str:
    return f"cb:notification:latest:{instance_id}"


def metrics_notifications(kind: str) -> str:
    return f"cb:metrics:notifications:{kind}"


def metrics_success(instance_id: str) -> str:
    return f"cb:metrics:success:{instance_id}"


def metrics_compactions(session_id: str) -> str:
    return f"cb:metrics:compactions:{session_id}"


def context_history(session_id: str) -> str:
    return f"cb:context:history:{session_id}"


def compact_snapshot(session_id: str, timestamp: int, part: str) -> str:
    """hook.pre_compact's 2-hour snapshot parts: instance, tasks, notifications, metadata."""
    return f"cb:snapshot:{session_id}:{timestamp}:{part}"


def todos_current(instance_id: str) -> str:
    return f"cb:todos:current:{instance_id}"


def todos_history(instance_id: str) -> str:
    return f"cb:todos:history:{instance_id}"


def todos_instance(instance_id: str) -> str:
    return f"cb:todos:instance:{instance_id}"


def todos_stats(instance_id: str) -> str:
    return f"cb:stats:todos:{instance_id}"


def todo_mapping(session_id: str) -> str:
    return f"cb:mapping:todo-task:{session_id}"


def claude_task_mapping(session_id: str) -> str:
    """Claude Code's own task ids (TaskCreate/TaskUpdate, 2.1.16+) → our task ids, per session."""
    return f"cb:mapping:claude-task:{session_id}"


def todo_limits(session_id: str) -> str:
    return f"cb:limits:todos:{session_id}"


def session_stream(session_id: str) -> str:
    return f"cb:stream:session:{session_id}"


def session_state(session_id: str) -> str:
    return f"cb:session:state:{session_id}"


def session_context(session_id: str) -> str:
    return f"cb:session:context:{session_id}"


def session_tools(session_id: str) -> str:
    return f"cb:session:tools:{session_id}"


def session_tasks(session_id: str) -> str:
    return f"cb:session:tasks:{session_id}"


def metrics_session(session_id: str) -> str:
    return f"cb:metrics:session:{session_id}"


def snapshot(session_id: str, snapshot_id: str) -> str:
    return f"cb:snapshot:{session_id}:{snapshot_id}"


def snapshot_pattern(session_id: str) -> str:
    return f"cb:snapshot:{session_id}:snap-*"


def hook_heartbeat(instance_id: str) -> str:
    """Throttle: a hook event heartbeats its Claude Code instance at most once per interval."""
    return f"cb:session:heartbeat:{instance_id}"


def session_processed(envelope_id: str) -> str:
    """Lock that lets one process of the cluster record one hook.*.executed event (SPEC §10.9)."""
    return f"cb:session:processed:{envelope_id}"


def config(key: str) -> str:
    return f"cb:config:{key}"


def handler_cache_pattern(event: str) -> str:
    """Every cached answer of one handler (SPEC §3.4 key shape), for invalidation by SCAN."""
    return f"cb:cache:handler:{event}:*"


# --- instances and coordination (SPEC §6.4, instances issue) ------------------------------------------
INSTANCES_ACTIVE = "cb:instances:active"
INSTANCE_QUEUE_PATTERN = "cb:queue:instance:*"
PARTITION_DETECTED = "cb:partition:detected"
PARTITION_RECOVERY = "cb:partition:recovery"
LEADER_CURRENT = "cb:leader:current"
LEADER_LOCK = "cb:leader:lock"
QUORUM_LATEST = "cb:quorum:decision:latest"
BATCH_LOCK = "cb:batch:lock"
BATCH_PROGRESS = "cb:batch:progress"
BATCH_CURRENT = "cb:batch:current"
STATE_GLOBAL = "cb:state:global"
# Written by the pipeline layers and scripts, read by system.metrics (same values as their block).
METRICS_GLOBAL = "cb:metrics:global"
METRICS_SCALING = "cb:metrics:scaling"
METRICS_CURRENT = "cb:metrics:current"
METRICS_COUNTERS = "cb:metrics:counters"
METRICS_CIRCUIT_ALL = "cb:metrics:circuit:all"
METRICS_CACHE_GLOBAL = "cb:metrics:cache:global"
METRICS_CACHE_HANDLER = "cb:metrics:cache:handler"
METRICS_VALIDATION_CACHE = "cb:metrics:validation:cache"
METRICS_SYSTEM_HEALTH = "cb:metrics:system:health"
METRICS_HEALTH = "cb:metrics:health"
METRICS_MCP_CALLS = "cb:metrics:mcp:calls"
METRICS_EVENTS_PATTERN = "cb:metrics:events:*"
METRICS_LEGACY_EVENTS_TOTAL = "cb:metrics:events:total"
METRICS_LEGACY_TASKS_COMPLETED = "cb:metrics:tasks:completed"
HISTORY_ASSIGNMENTS = "cb:history:assignments"
STREAM_EVENTS = "cb:stream:events"

# system.flush (SPEC §5.3.3): the original's patterns, then the ones it missed (SPEC §16 row 55).
FLUSH_PATTERNS = (
    "cb:task:*", "cb:instance:*", "cb:queue:*", "cb:stream:*", "cb:metrics:*", "cb:circuit:*",
    "cb:ratelimit:*", "cb:todo:*", "cb:service:*", "cb:hook:*", "cb:session:*", "cb:health:*",
    "cb:quorum:*", "cb:batch:*", "cb:scaling:*",
    "cb:todos:*", "cb:mapping:*", "cb:cache:*", "cb:gossip:*", "cb:leader:*", "cb:processed:*",
    "cb:instances:*", "cb:role:*", "cb:capabilities:*", "cb:specialists:*", "cb:partition:*",
    "cb:state:*", "cb:history:*", "cb:redistributed:*", "cb:counter:*",
)


def instance_id_of(key: str) -> str:
    """`cb:instance:{id}` or `cb:queue:instance:{id}` → id."""
    return key.split(":instance:", 1)[1]


def role(role_name: str) -> str:
    return f"cb:role:{role_name}"


def capabilities(instance_id: str) -> str:
    return f"cb:capabilities:{instance_id}"


def specialists(kind: str) -> str:
    return f"cb:specialists:{kind}"


def capacity(instance_id: str) -> str:
    return f"cb:capacity:{instance_id}"


def redistributed_from(instance_id: str) -> str:
    return f"cb:redistributed:from:{instance_id}"


def quorum_decision(decision: str) -> str:
    return f"cb:quorum:decision:{decision}"


def batch_lock(batch_id: str) -> str:
    return f"cb:batch:{batch_id}:lock"


def batch_progress(batch_id: str) -> str:
    return f"cb:batch:{batch_id}:progress"


def metrics_event_hash(event: str) -> str:
    return f"cb:metrics:events:{event}"


def circuit_key(event: str, part: str) -> str:
    return f"cb:circuit:{event}:{part}"


def metrics_last_called(event: str) -> str:
    return f"cb:metrics:{event}:lastCalled"


def cache_handler_stats(event: str) -> str:
    return f"cb:cache:{event}"


# --- pipeline: rate limits, breakers, cache, metrics, audit (SPEC §3.4–3.12, §6.2–6.3) -------------
METRICS_COUNTERS = "cb:metrics:counters"
METRICS_CURRENT = "cb:metrics:current"
METRICS_GLOBAL = "cb:metrics:global"
METRICS_CACHE_HANDLER = "cb:metrics:cache:handler"
METRICS_CACHE_GLOBAL = "cb:metrics:cache:global"
METRICS_VALIDATION_CACHE = "cb:metrics:validation:cache"
METRICS_SYSTEM_HEALTH = "cb:metrics:system:health"
METRICS_SCALING = "cb:metrics:scaling"
METRICS_CIRCUIT_ALL = "cb:metrics:circuit:all"
ALERTS_CIRCUIT_OPENED = "cb:alerts:circuit:opened"
AUDIT_GENERAL = "cb:audit:general"
AUDIT_HOOK_DECISIONS = "cb:audit:hooks:decisions"
CIRCUIT_PATTERN = "cb:circuit:*"


def ratelimit(event: str, actor: str) -> str:
    return f"cb:ratelimit:{event}:{actor}"


def circuit(event: str, part: str) -> str:
    """`cb:circuit:{event}:{part}`: state, trips, allowed, rejected, failures, successes, lastFailure,
    openedAt, failures:{type} (SPEC §3.10, §6.3)."""
    return f"cb:circuit:{event}:{part}"


def cache_entry(event: str, digest: str) -> str:
    return f"cb:cache:handler:{event}:{digest}"


def cache_version(scope: str) -> str:
    """Generation counter of one cache scope; writers bump it, cached entries carry the value they saw."""
    return f"cb:cache:version:{scope}"


def metrics_events(event: str) -> str:
    return f"cb:metrics:events:{event}"


def audit_tool_stream(tool: str) -> str:
    """`cb:audit:tools:{tool}`: per-tool hook decisions written by the audit layer (SPEC §3.6)."""
    return f"cb:audit:tools:{tool}"


# --- WebSocket live view (SPEC §2.6, §6.1; events/consumers.py, issue 7) ------------------------------
WS_SUBSCRIPTIONS_PREFIX = "cb:ws:subscriptions:"
WS_SUBSCRIPTIONS_PATTERN = "cb:ws:subscriptions:*"
WS_CLIENT_PATTERN = "cb:ws:client:*"


def ws_subscriptions(client_id: str) -> str:
    """Patterns one WebSocket client holds (SET, EXPIRE 3600, DEL on disconnect)."""
    return f"cb:ws:subscriptions:{client_id}"


def ws_client(client_id: str) -> str:
    """One connected WebSocket client: connectedAt, userAgent, process (HASH, same TTL), for /ws/stats."""
    return f"cb:ws:client:{client_id}"
