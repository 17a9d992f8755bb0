"""FastAPI dependencies of service A's routes: the settings, a database
session (read-write, or read-only for reads), the Kafka bridge and the path parameters.

The session, bridge and user id are the same in every service and come from
:mod:`shopkit.deps`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from app.settings import Settings
from shopkit.deps import BridgeDep, ReadSessionDep, SessionDep, UserIdPath
from shopkit.wire import INT64_MAX

__all__ = ["BridgeDep", "ProductIdPath", "ReadSessionDep", "SessionDep", "SettingsDep", "UserIdPath", "get_settings"]


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]

ProductIdPath = Annotated[int, Path(gt=0, le=INT64_MAX, description="Product id.")]
