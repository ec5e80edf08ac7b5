"""test.circuit (SPEC §5.3.8): registered only when CB_ENABLE_TEST_HANDLERS is on (SPEC §16 row 42),
to exercise the rate limiter, the timeout and the circuit breaker end to end."""

from __future__ import annotations

import asyncio

from pydantic import Field

from claudebench.core.errors import CbError
from claudebench.core.pipeline import Ctx
from claudebench.core.registry import Limits, Mcp, handler
from claudebench.core.schema import Out, Schema


class TestCircuitIn(Schema):
    should_fail: bool = False
    failure_message: str | None = None
    delay: int | float | None = Field(None, ge=0, le=60_000)


class TestCircuitOut(Out):
    success: bool
    message: str


class SimulatedFailure(CbError):
    """The failure test.circuit was asked for: an internal error, so it counts against the breaker."""


def _fallback(data: TestCircuitIn) -> dict:
    return {"success": False, "message": "Circuit breaker open - fallback response"}


@handler(
    "test.circuit", input=TestCircuitIn, output=TestCircuitOut, declared_rate_limit=100, mutating=False,
    limits=Limits(rate=100, timeout_ms=1_000, trip_after=5, open_ms=1_000), fallback=_fallback,
    mcp=Mcp(title="Circuit breaker test", tags=("test",)),
)
async def test_circuit(ctx: Ctx, data: TestCircuitIn) -> TestCircuitOut:
    """Wait `delay` ms, then fail with `failureMessage` when `shouldFail`, else succeed."""
    if data.delay:
        await asyncio.sleep(data.delay / 1000)
    if data.should_fail:
        message = data.failure_message or "Test failure"
        raise SimulatedFailure(message, data=message)
    return TestCircuitOut(success=True, message="Test handler executed successfully")
