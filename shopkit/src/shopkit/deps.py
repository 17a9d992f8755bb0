"""FastAPI dependencies every service uses: a database session per request,
the Kafka bridge, and the user id in a path.

They read ``app.state.sessions`` and ``app.state.bridge``, which the
service's lifespan sets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shopkit.kafka import KafkaBridge
from shopkit.wire import INT64_MAX


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request."""
    async with request.app.state.sessions() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for a request that only reads: on SQLite from the
    read pool, which neither waits for nor blocks the writer."""
    async with request.app.state.read_sessions() as session:
        yield session


def get_bridge(request: Request) -> KafkaBridge:
    """The app's Kafka bridge."""
    bridge: KafkaBridge = request.app.state.bridge
    return bridge


SessionDep = Annotated[AsyncSession, Depends(get_session)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_session)]
BridgeDep = Annotated[KafkaBridge, Depends(get_bridge)]

UserIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="User id.")]
ItemIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="Cart item id.")]
