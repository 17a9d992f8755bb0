"""FastAPI dependencies: the settings, a database session and the Kafka bridge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.kafka import KafkaBridge
from app.models import INT64_MAX
from app.payments import Payments
from app.settings import Settings


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request."""
    async with request.app.state.sessions() as session:
        yield session


def get_bridge(request: Request) -> KafkaBridge:
    """The app's Kafka bridge."""
    return request.app.state.bridge


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
BridgeDep = Annotated[KafkaBridge, Depends(get_bridge)]

ItemIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="Cart item id.")]
OrderIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="Order id.")]
UserIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="User id.")]


def get_payments(request: Request) -> Payments:
    """The app's payment service."""
    return request.app.state.payments


PaymentsDep = Annotated[Payments, Depends(get_payments)]
