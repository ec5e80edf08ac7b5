"""core.pg.insert group-commits concurrent rows (PERF.md): one multi-row INSERT per batch, each
caller gets its own row's outcome. Real PostgreSQL; the statements are observed in-process by
wrapping psycopg's AsyncConnection.execute (pg_stat_statements is not installed)."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg import errors

from claudebench.core import pg
from hooks.models import HookAudit
from tasks.models import Task

pytestmark = pytest.mark.django_db(transaction=True)

TASK_COLUMNS = ("id", "text", "status", "priority", "metadata")


class Statements:
    """Every INSERT into one table sent through a pooled connection: (sql text, parameter count).
    `hold()` makes the next such statement wait until released; `fail_next` raises instead of
    sending it."""

    def __init__(self, table: str) -> None:
        self.prefix = f'INSERT INTO "{table}"'
        self.seen: list[tuple[str, int]] = []
        self._gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        self.fail_next: BaseException | None = None

    def hold(self) -> asyncio.Event:
        self._gate = asyncio.Event()
        self.entered = asyncio.Event()
        return self._gate

    def rows(self, width: int) -> list[int]:
        """Rows per statement, in the order sent."""
        return [n // width for _, n in self.seen]

    async def before(self, query: Any, params: Any) -> None:
        if not (isinstance(query, str) and query.startswith(self.prefix)):
            return
        self.seen.append((query, len(params or ())))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc
        gate, self._gate = self._gate, None
        if gate is not None:
            self.entered.set()
            await gate.wait()


@pytest.fixture
def statements(monkeypatch) -> Statements:
    recorder = Statements("Task")
    original = psycopg.AsyncConnection.execute

    async def execute(self, query, params=None, **kwargs):
        await recorder.before(query, params)
        return await original(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.AsyncConnection, "execute", execute)
    return recorder


def task(i: Any, **extra: Any) -> dict[str, Any]:
    return {"id": f"t-{i}", "text": f"task {i}", "status": "pending", "priority": 50, "metadata": {"n": i},
            **extra}


async def task_rows() -> dict[str, dict[str, Any]]:
    rows = await pg.fetch('SELECT "id", "text", "priority", "metadata", "updatedAt" FROM "Task"')
    return {r["id"]: r for r in rows}


async def test_concurrent_inserts_land_as_rows_in_one_statement(statements):
    await asyncio.gather(*(pg.insert(Task, task(i)) for i in range(40)))

    rows = await task_rows()
    assert sorted(rows) == sorted(f"t-{i}" for i in range(40))
    assert all(rows[f"t-{i}"]["metadata"] == {"n": i} for i in range(40))
    # all 40 were handed over in the same loop tick, before the batch was built
    assert statements.rows(len(TASK_COLUMNS)) == [40]


async def test_a_batch_holds_at_most_max_rows(statements):
    await asyncio.gather(*(pg.insert(Task, task(i)) for i in range(pg._MAX_BATCH_ROWS + 30)))

    assert len(await task_rows()) == pg._MAX_BATCH_ROWS + 30
    assert statements.rows(len(TASK_COLUMNS)) == [pg._MAX_BATCH_ROWS, 30]


async def test_a_row_arriving_during_a_statement_is_written_beside_it(statements):
    """Up to IN_FLIGHT statements run at once: a row does not wait for another's commit."""
    gate = statements.hold()
    first = asyncio.ensure_future(pg.insert(Task, task(0)))
    await asyncio.wait_for(statements.entered.wait(), 5)
    await pg.insert(Task, task(1))  # committed while the first statement is still held
    assert not first.done()
    gate.set()
    await first
    assert statements.rows(len(TASK_COLUMNS)) == [1, 1]
    assert len(await task_rows()) == 2


async def test_rows_arriving_while_every_writer_is_busy_go_in_the_next_statement(statements, monkeypatch):
    monkeypatch.setattr(pg._Batcher, "IN_FLIGHT", 1)
    gate = statements.hold()
    first = asyncio.ensure_future(pg.insert(Task, task(0)))
    await asyncio.wait_for(statements.entered.wait(), 5)  # the first row went alone, at once
    later = [asyncio.ensure_future(pg.insert(Task, task(i))) for i in range(1, 8)]
    await asyncio.sleep(0.05)
    assert not first.done() and not any(t.done() for t in later)  # nobody returns before its commit
    gate.set()
    await asyncio.gather(first, *later)

    assert statements.rows(len(TASK_COLUMNS)) == [1, 7]
    assert len(await task_rows()) == 8


async def test_sequential_inserts_are_single_row_statements(statements):
    for i in range(4):
        await pg.insert(Task, task(i))
        assert f"t-{i}" in await task_rows()  # committed when the call returned

    assert statements.rows(len(TASK_COLUMNS)) == [1, 1, 1, 1]
    assert len({q for q, _ in statements.seen}) == 1  # the same cached text every time


async def test_a_duplicate_key_fails_only_its_own_caller(statements):
    await pg.insert(Task, task("dup", text="the original"))
    statements.seen.clear()

    rows = [task(i) for i in range(6)] + [task("dup", text="the copy")] + [task(i) for i in range(6, 10)]
    results = await asyncio.gather(*(pg.insert(Task, r) for r in rows), return_exceptions=True)

    assert isinstance(results[6], errors.UniqueViolation)
    assert results[:6] + results[7:] == [None] * 10
    stored = await task_rows()
    assert sorted(stored) == sorted([f"t-{i}" for i in range(10)] + ["t-dup"])
    assert stored["t-dup"]["text"] == "the original"
    # the rejected 11-row statement, then each row alone
    assert statements.rows(len(TASK_COLUMNS)) == [11] + [1] * 11


async def test_two_callers_with_the_same_new_key_in_one_batch():
    results = await asyncio.gather(pg.insert(Task, task("same", text="a")), pg.insert(Task, task(1)),
                                   pg.insert(Task, task("same", text="b")), return_exceptions=True)

    assert results[0] is None and results[1] is None
    assert isinstance(results[2], errors.UniqueViolation)
    stored = await task_rows()
    assert sorted(stored) == ["t-1", "t-same"] and stored["t-same"]["text"] == "a"


async def test_a_bad_value_fails_only_its_own_caller():
    rows = [task(0), task(1, priority="not a number"), task(2)]
    results = await asyncio.gather(*(pg.insert(Task, r) for r in rows), return_exceptions=True)

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], errors.InvalidTextRepresentation)
    assert sorted(await task_rows()) == ["t-0", "t-2"]


async def test_a_caller_cancelled_during_its_statement_does_not_break_the_batch(statements):
    gate = statements.hold()
    callers = [asyncio.ensure_future(pg.insert(Task, task(i))) for i in range(5)]
    await asyncio.wait_for(statements.entered.wait(), 5)
    callers[2].cancel()
    gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)

    assert isinstance(results[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(results) if i != 2] == [None] * 4
    # its row was already in the statement, so it was written too
    assert sorted(await task_rows()) == [f"t-{i}" for i in range(5)]
    await pg.insert(Task, task(9))  # the batcher goes on
    assert "t-9" in await task_rows()


async def test_a_caller_cancelled_before_its_statement_is_built_is_not_written(statements):
    gate = statements.hold()
    first = asyncio.ensure_future(pg.insert(Task, task(0)))
    await asyncio.wait_for(statements.entered.wait(), 5)
    waiting = [asyncio.ensure_future(pg.insert(Task, task(i))) for i in range(1, 4)]
    await asyncio.sleep(0)  # handed over, waiting for the next statement
    waiting[1].cancel()
    gate.set()
    results = await asyncio.gather(first, *waiting, return_exceptions=True)

    assert results[0] is None and results[1] is None and results[3] is None
    assert isinstance(results[2], asyncio.CancelledError)
    assert sorted(await task_rows()) == ["t-0", "t-1", "t-3"]
    assert statements.rows(len(TASK_COLUMNS)) == [1, 2]


async def test_an_unknown_outcome_is_not_retried_and_later_batches_still_run(statements):
    statements.fail_next = psycopg.OperationalError("connection lost (test)")
    results = await asyncio.gather(*(pg.insert(Task, task(i)) for i in range(3)), return_exceptions=True)

    assert all(isinstance(r, psycopg.OperationalError) for r in results)
    assert statements.rows(len(TASK_COLUMNS)) == [3]  # not tried again row by row: it may have been written
    await asyncio.gather(*(pg.insert(Task, task(i)) for i in range(3, 6)))
    assert sorted(await task_rows()) == ["t-3", "t-4", "t-5"]


async def test_json_values_and_auto_now_columns_in_a_batch(statements):
    values = [{"a": [1, 2]}, ["x", None], "plain", 7, None]
    await asyncio.gather(*(pg.insert(Task, task(i, metadata=v)) for i, v in enumerate(values)))

    stored = await task_rows()
    assert [stored[f"t-{i}"]["metadata"] for i in range(len(values))] == values
    assert all(stored[f"t-{i}"]["updatedAt"] is not None for i in range(len(values)))  # auto_now: now()
    assert statements.rows(len(TASK_COLUMNS)) == [len(values)]
    assert statements.seen[0][0].count("now()") == len(values)

    await asyncio.gather(*(pg.insert(HookAudit, {
        "id": f"h-{i}", "hook_type": "pre_tool", "params": {"tool": "Bash", "i": i},
        "result": {"allow": i % 2 == 0}, "allowed": i % 2 == 0, "modified": False,
    }) for i in range(4)))
    audits = await pg.fetch('SELECT "id", "params", "result", "timestamp" FROM "HookAudit" ORDER BY "id"')
    assert [(a["id"], a["params"]["i"], a["result"]["allow"]) for a in audits] == [
        (f"h-{i}", i, i % 2 == 0) for i in range(4)
    ]
    assert all(a["timestamp"] is not None for a in audits)  # db_default


async def test_the_sql_text_is_rendered_once_per_model_columns_and_row_count(statements):
    shape = pg._shape(Task, TASK_COLUMNS)
    assert pg._shape(Task, TASK_COLUMNS) is shape
    assert shape.insert_sql(3) is shape.insert_sql(3)
    assert shape.insert_sql(1) is shape.insert_sql(1)
    assert shape.insert_sql(3).count("now()") == 3
    assert pg._shape(Task, ("text", "id", "status", "priority", "metadata")) is not shape  # key order matters
    assert shape.upsert_sql(("id",)) is shape.upsert_sql(("id",))

    await asyncio.gather(*(pg.insert(Task, task(i)) for i in range(3)))
    await pg.insert(Task, task(3))
    assert [q for q, _ in statements.seen] == [shape.insert_sql(3), shape.insert_sql(1)]
    assert statements.seen[0][0] is shape.insert_sql(3)


async def test_upsert_through_the_cached_text():
    await pg.upsert(Task, task(1, text="first"))
    await pg.upsert(Task, task(1, text="second"))
    stored = await task_rows()
    assert list(stored) == ["t-1"] and stored["t-1"]["text"] == "second"


async def test_close_pool_writes_the_rows_still_waiting():
    loop = asyncio.get_running_loop()
    callers = [asyncio.ensure_future(pg.insert(Task, task(i))) for i in range(5)]
    await asyncio.sleep(0)  # handed over; the batch has not been written yet
    assert not any(c.done() for c in callers)

    await pg.close_pool()

    assert all(c.done() and c.exception() is None for c in callers)
    assert loop not in pg._batchers
    assert sorted(await task_rows()) == [f"t-{i}" for i in range(5)]


async def test_a_cancelled_batch_task_fails_its_callers_instead_of_stranding_them(statements):
    statements.hold()  # never released: the statement stays in flight until the task is cancelled
    callers = [asyncio.ensure_future(pg.insert(Task, task(i))) for i in range(3)]
    await asyncio.wait_for(statements.entered.wait(), 5)
    waiting = asyncio.ensure_future(pg.insert(Task, task(3)))
    await asyncio.sleep(0)
    batcher = pg._batchers[asyncio.get_running_loop()][pg._shape(Task, TASK_COLUMNS)]
    for writer in list(batcher.tasks):
        writer.cancel()  # as the loop's shutdown does
    results = await asyncio.wait_for(asyncio.gather(*callers, waiting, return_exceptions=True), 5)

    assert all(isinstance(r, psycopg.OperationalError) for r in results)
    assert not batcher.tasks and not batcher.pending
    await pg.insert(Task, task(9))  # a new task takes over
    assert "t-9" in await task_rows()
