"""shopkit.leader: one holder at a time among processes sharing a database,
and the outbox relay elected with it."""

from __future__ import annotations

import asyncio

from app.main import MIGRATIONS
from shopkit import db, migrations
from shopkit.kafka import KafkaBridge, KafkaConfig
from shopkit.leader import leader_lock


async def test_one_holder_at_a_time(database_url: str) -> None:
    """A second engine (another process's pool) cannot take a held lock;
    it can once the holder releases it, and a holder may ask again."""
    engines = [db.make_engine(database_url), db.make_engine(database_url)]
    await migrations.upgrade(engines[0], MIGRATIONS)
    first, second = (leader_lock(e, "test-lock") for e in engines)
    try:
        assert await first.acquire()
        assert await first.acquire(), "asking again while holding"
        await first.check()
        assert not await second.acquire()
        await first.release()
        assert await second.acquire()
        assert not await first.acquire()
        await second.release()
    finally:
        for engine in engines:
            await engine.dispose()


async def test_lock_names_are_independent(database_url: str) -> None:
    engines = [db.make_engine(database_url), db.make_engine(database_url)]
    await migrations.upgrade(engines[0], MIGRATIONS)
    a, b = leader_lock(engines[0], "lock-a"), leader_lock(engines[1], "lock-b")
    try:
        assert await a.acquire()
        assert await b.acquire()
    finally:
        await a.release()
        await b.release()
        for engine in engines:
            await engine.dispose()


async def test_one_relay_leads(database_url: str) -> None:
    """Two bridges on one database (two workers): one relay leads, the other
    stands by, and takes over when the leader stops."""
    engines = [db.make_engine(database_url), db.make_engine(database_url)]
    await migrations.upgrade(engines[0], MIGRATIONS)
    bridges = [
        KafkaBridge(
            KafkaConfig(source="test", enabled=False, poll_seconds=0.05),
            handler=lambda session, event: asyncio.sleep(0),
            sessions=db.make_session_factory(engine),
            relay_lock=leader_lock(engine, "outbox-relay"),
        )
        for engine in engines
    ]
    try:
        leads = [await b.relay.election.lead() for b in bridges]
        assert sorted(leads) == [False, True]
        leader, standby = (bridges[0], bridges[1]) if leads[0] else (bridges[1], bridges[0])
        assert await leader.relay.election.lead() and not await standby.relay.election.lead()
        await leader.stop()
        assert await standby.relay.election.lead()
        assert standby.relay.election.leader and not leader.relay.election.leader
    finally:
        for bridge in bridges:
            await bridge.stop()
        for engine in engines:
            await engine.dispose()
