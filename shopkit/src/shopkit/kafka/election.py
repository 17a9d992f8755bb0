"""Which process relays the outbox when several share the database.

A service may run as several uvicorn workers and instances on one database;
the outbox must be published by one relay at a time, in id order.
:class:`RelayElection` keeps this process's standing in that election on a
:class:`~shopkit.leader.LeaderLock`."""

from __future__ import annotations

import contextlib
import logging

from shopkit.leader import LeaderLock

log = logging.getLogger(__name__)


class RelayElection:
    """This process's claim to relay the outbox. lock None: no election, this
    process always relays."""

    def __init__(self, lock: LeaderLock | None) -> None:
        self._lock = lock
        self.leader = lock is None
        """Whether this process relays now."""

    async def lead(self) -> bool:
        """Whether this process is (still, or now) the relay: a leader checks
        that its lock is still held (raising when it may be lost), a standby
        tries to take it."""
        if self._lock is None:
            return True
        if self.leader:
            await self._lock.check()
            return True
        self.leader = await self._lock.acquire()
        if self.leader:
            log.info("outbox relay: this process now publishes the outbox")
        return self.leader

    async def resign(self) -> None:
        """Give the lock up, so that a standby takes over (no-op when not leading
        or without an election). Never raises."""
        if self._lock is not None and self.leader:
            self.leader = False
            with contextlib.suppress(Exception):
                await self._lock.release()
