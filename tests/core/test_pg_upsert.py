"""core.pg.upsert: insert, then update on conflict (found broken by the instances issue)."""

from __future__ import annotations

import pytest

from claudebench.core import pg
from instances.models import Instance

pytestmark = pytest.mark.django_db(transaction=True)


async def test_upsert_inserts_then_updates_the_same_row():
    await pg.upsert(Instance, {"id": "i-1", "name": "i-1", "role": "worker", "status": "ACTIVE"})
    await pg.upsert(Instance, {"id": "i-1", "name": "i-1", "role": "worker", "status": "OFFLINE"})
    rows = [row async for row in Instance.objects.all()]
    assert [(r.id, r.status) for r in rows] == [("i-1", "OFFLINE")]
