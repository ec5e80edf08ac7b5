"""The no-op subscription that B4 runs in `consume_streams` (CB_SUBSCRIPTION_MODULES)."""

from events.subscriptions import durable


@durable("bench.consumed", name="bench-noop", group="cb:bench-noop", batch_size=100)
async def noop(event) -> None:
    """Does nothing: B4 measures the delivery machinery."""
