"""FastAPI dependencies of service B's routes: the settings, a database
session (read-write, or read-only for reads), the Kafka bridge, the payment service and the path parameters.

The session, bridge and user id are the same in every service and come from
:mod:`shopkit.deps`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.payments import Payments
from app.settings import Settings
from shopkit.deps import BridgeDep, ItemIdPath, ReadSessionDep, SessionDep, UserIdPath
from shopkit.wire import INT64_MAX

__all__ = [
    "BridgeDep",
    "ItemIdPath",
    "OrderIdPath",
    "PaymentsDep",
    "ReadSessionDep",
    "SessionDep",
    "SettingsDep",
    "UserIdPath",
    "get_payments",
    "get_settings",
]


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_payments(request: Request) -> Payments:
    """The app's payment service."""
    return request.app.state.payments


SettingsDep = Annotated[Settings, Depends(get_settings)]
PaymentsDep = Annotated[Payments, Depends(get_payments)]

OrderIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="Order id.")]
