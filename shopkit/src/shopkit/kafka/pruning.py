"""Inbox pruning: consumed event ids are kept for the retention period (long
enough to recognise any redelivery), then deleted."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shopkit.db import Inbox
from shopkit.wire import utcnow

log = logging.getLogger(__name__)

PRUNE_SECONDS = 600.0
"""How often :meth:`InboxPruner.run` prunes."""


class InboxPruner:
    """Deletes the inbox rows of events consumed longer ago than retention."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], retention: timedelta) -> None:
        self._sessions = sessions
        self._retention = retention

    async def prune(self) -> int:
        """Delete the expired rows now; return how many went."""
        cutoff = utcnow() - self._retention
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(Inbox).where(Inbox.processed_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)

    async def run(self) -> None:
        """Prune every PRUNE_SECONDS until cancelled; a failure is logged and
        tried again next time."""
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("inbox prune failed: %r", exc)
            await asyncio.sleep(PRUNE_SECONDS)
