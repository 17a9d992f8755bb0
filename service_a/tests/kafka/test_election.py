"""shopkit.kafka.election: this process's standing as the outbox relay
(with a scripted lock; the real locks are in tests/test_leader.py)."""

from __future__ import annotations

import pytest

from shopkit.kafka.election import RelayElection


class ScriptedLock:
    def __init__(self, free: bool = True) -> None:
        self.free = free
        self.held = False
        self.lost = False
        self.releases = 0

    async def acquire(self) -> bool:
        if self.held or self.free:
            self.held, self.free = True, False
        return self.held

    async def check(self) -> None:
        if self.lost:
            raise ConnectionError("lock connection died")

    async def release(self) -> None:
        self.releases += 1
        if self.held:
            self.held, self.free = False, True


async def test_without_a_lock_always_leads() -> None:
    election = RelayElection(None)
    assert election.leader
    assert await election.lead()
    await election.resign()
    assert election.leader


async def test_takes_a_free_lock_and_gives_it_up() -> None:
    lock = ScriptedLock()
    election = RelayElection(lock)
    assert not election.leader
    assert await election.lead()
    assert election.leader and lock.held
    await election.resign()
    assert not election.leader and not lock.held


async def test_stands_by_while_another_holds() -> None:
    lock = ScriptedLock(free=False)
    election = RelayElection(lock)
    assert not await election.lead()
    assert not election.leader
    await election.resign()
    assert lock.releases == 0, "a standby releases nothing"
    lock.free = True
    assert await election.lead()


async def test_a_lost_lock_raises_while_leading() -> None:
    lock = ScriptedLock()
    election = RelayElection(lock)
    assert await election.lead()
    lock.lost = True
    with pytest.raises(ConnectionError):
        await election.lead()


async def test_resign_swallows_a_failing_release() -> None:
    lock = ScriptedLock()
    election = RelayElection(lock)
    await election.lead()

    async def broken() -> None:
        raise OSError("gone")

    lock.release = broken  # type: ignore[method-assign]
    await election.resign()
    assert not election.leader
