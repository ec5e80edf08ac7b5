"""Input and output models of the system handlers (SPEC §5.3.3)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from claudebench.core.schema import Out, Schema, opt

Id = Annotated[str, Field(min_length=1)]
Number = int | float

# A field typed `X` with default None is "optional" the way the original's zod schemas are:
# absent is fine, an explicit null is a validation error (SPEC §18.2).


class Services(Out):
    redis: bool
    postgres: bool
    mcp: bool


class SystemHealthOut(Out):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: Services


class RegisterMetadata(Schema):
    working_directory: str = None  # type: ignore[assignment]


class SystemRegisterIn(Schema):
    id: Id
    roles: list[str]
    metadata: RegisterMetadata = None  # type: ignore[assignment]


class SystemRegisterOut(Out):
    registered: bool


class SystemHeartbeatIn(Schema):
    instance_id: Id


class SystemHeartbeatOut(Out):
    alive: bool


class SystemUnregisterIn(Schema):
    instance_id: Id
    session_id: Id
    timestamp: Number


class SystemUnregisterOut(Out):
    unregistered: bool
    tasks_reassigned: int | None = opt()


class SystemGetStateOut(Out):
    tasks: list[dict[str, Any]] | None = opt()
    instances: list[dict[str, Any]] | None = opt()
    recent_events: list[dict[str, Any]] | None = opt()


class SystemMetricsIn(Schema):
    detailed: bool = None  # type: ignore[assignment]


class HandlerMetrics(Out):
    total_calls: int
    success_count: int
    error_count: int
    avg_response_time: float
    circuit_state: str
    rate_limit_hits: int | None = opt()
    cache_hit_rate: float | None = opt()
    last_called: str | None = opt()


class SystemMetricsOut(Out):
    events_processed: float | None = opt()
    tasks_completed: float | None = opt()
    average_latency: float | None = opt()
    memory_usage: float
    handlers: dict[str, HandlerMetrics] | None = opt()
    circuit_breaker: dict[str, float] | None = opt()
    queue: dict[str, float] | None = opt()
    cache: dict[str, float] | None = opt()
    counters: dict[str, dict[str, float]] | None = opt()
    global_: dict[str, float] | None = opt(alias="global")
    scaling: dict[str, float] | None = opt()
    current: dict[str, float] | None = opt()
    mcp_calls: int | None = opt()
    system_health_check: dict[str, float] | None = opt()


class SystemBatchProcessIn(Schema):
    batch_id: Id
    instance_id: Id
    items: list[Any]


class SystemBatchProcessOut(Out):
    processed: bool
    processor_id: str | None = opt()
    items_processed: int | None = opt()


class SystemQuorumVoteIn(Schema):
    instance_id: Id
    decision: Id
    value: str
    total_instances: Annotated[int, Field(ge=1, le=100_000)] = 3


class SystemQuorumVoteOut(Out):
    voted: bool
    quorum_reached: bool
    final_decision: str | None = opt()
    vote_count: int | None = opt()


class SystemCheckHealthIn(Schema):
    timeout: Annotated[Number, Field(gt=0, le=86_400_000)] = 10_000


class SystemCheckHealthOut(Out):
    healthy: list[str]
    failed: list[str]
    reassigned: dict[str, int]


class SystemDiscoverIn(Schema):
    domain: str = None  # type: ignore[assignment]


class MethodMetadata(Out):
    persist: bool | None = opt()
    rate_limit: int | None = opt()
    roles: list[str] | None = opt()


class DiscoveredMethod(Out):
    name: str
    description: str | None = opt()
    input_schema: dict[str, Any] | None = opt()
    output_schema: dict[str, Any] | None = opt()
    metadata: MethodMetadata | None = opt()


class SystemDiscoverOut(Out):
    methods: list[DiscoveredMethod]


class SystemFlushIn(Schema):
    confirm: Literal["FLUSH_ALL_DATA"]
    include_postgres: bool = True


class FlushedRedis(Out):
    keys_deleted: int
    patterns: list[str]


class FlushedPostgres(Out):
    tasks_deleted: int


class SystemFlushOut(Out):
    redis: FlushedRedis
    postgres: FlushedPostgres | None = opt()
    timestamp: str


class SystemRedisKeysIn(Schema):
    pattern: Annotated[str, Field(min_length=1, max_length=1000)] = "*"
    cursor: Annotated[int, Field(ge=0)] = 0
    count: Annotated[int, Field(ge=1, le=1000)] = 100


class SystemRedisKeysOut(Out):
    keys: list[str]
    cursor: int
    pattern: str
    total: int | None = opt()
    keys_by_type: dict[str, str] | None = opt()


class SystemRedisGetIn(Schema):
    key: Id
    format: Literal["raw", "json", "pretty"] = "pretty"
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class RedisKeyMetadata(Out):
    encoding: str | None = opt()
    memory: int | None = opt()
    last_modified: str | None = opt()


class SystemRedisGetOut(Out):
    key: str
    exists: bool
    type: str
    ttl: int
    size: int
    data: Any
    metadata: RedisKeyMetadata | None = opt()


class SystemPostgresTablesIn(Schema):
    schema_: Annotated[str, Field(min_length=1, alias="schema")] = "public"
    include_views: bool = False
    include_system_tables: bool = False


class PgColumn(Out):
    name: str
    type: str
    nullable: bool
    default_value: str | None
    is_primary_key: bool


class PgIndex(Out):
    name: str
    columns: list[str]
    unique: bool
    primary: bool


class PgConstraint(Out):
    name: str
    type: str
    definition: str


class PgTable(Out):
    name: str
    schema_: str = Field(alias="schema")
    type: Literal["table", "view", "materialized_view"]
    row_count: int | None = opt()
    size_bytes: int | None = opt()
    columns: list[PgColumn]
    indexes: list[PgIndex] | None = opt()
    constraints: list[PgConstraint] | None = opt()


class SystemPostgresTablesOut(Out):
    tables: list[PgTable]
    schema_: str = Field(alias="schema")
    total_tables: int


Identifier = Annotated[str, Field(min_length=1, max_length=63)]


class SystemPostgresQueryIn(Schema):
    table: Identifier
    schema_: Annotated[str, Field(min_length=1, max_length=63, alias="schema")] = "public"
    columns: list[Identifier] = None  # type: ignore[assignment]
    where: Annotated[str, Field(max_length=2000)] = None  # type: ignore[assignment]
    order_by: Annotated[str, Field(max_length=500)] = None  # type: ignore[assignment]
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    offset: Annotated[int, Field(ge=0)] = 0
    format: Literal["raw", "pretty"] = "pretty"


class QueryColumn(Out):
    name: str
    type: str


class QueryInfo(Out):
    sql: str
    parameters: list[Any]


class SystemPostgresQueryOut(Out):
    table: str
    schema_: str = Field(alias="schema")
    columns: list[QueryColumn]
    rows: list[dict[str, Any]]
    total_rows: int
    has_more: bool
    execution_time: float
    query_info: QueryInfo
